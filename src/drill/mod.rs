//! Exercise drills (`fusion drill`): replay a captured period exactly as live operations
//! saw it, isolated from them, with scripted injects, and score it.
//!
//! - `fusion run --capture-out FILE` (any source) or `fusion drill capture --input DIR`
//!   records every input record with the logical time it was handed on at
//!   ([`capture`]).
//! - `fusion drill run NAME --capture FILE` replays it into the drill's own namespace:
//!   the directory `<drill-dir>/NAME/` (alerts, routing, dead letters, delivery intents,
//!   injects, its own outbox) and the topic prefix `drill.NAME.` (the desk shows the
//!   drill banner and takes drill actions only). Every alert is marked `drill`
//!   (payload, alert file, desk, webhooks). With `--subscriptions`, every endpoint must
//!   be flagged `drill = true`, or the drill refuses to start naming those that are not.
//!   Records before the drill period (`--from`) rebuild the state it starts from, as
//!   fast as they can; the period is paced at `--speed` times the wall clock and shifted
//!   by `--shift-to` (logical times and the records' own instants alike). Nothing before
//!   the period is delivered.
//! - `fusion drill report NAME` scores it.

pub mod capture;
pub mod inject;
pub mod report;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Args, FromArgMatches, Subcommand};
use fusion::output::{Closed, ClosedSink, SinkError};
use serde::Serialize;

use crate::run::RunArgs;

/// `fusion drill …`.
#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// Records the input of a scenario directory with the logical time each record gets
    /// (for `fusion drill run`); `fusion run --capture-out FILE` records a live run.
    Capture(CaptureArgs),
    /// Replays a capture as an exercise drill, isolated from live operations.
    Run(Box<DrillRunArgs>),
    /// Scores a drill: per center, per bureau, planted items detected or missed.
    Report(report::ReportArgs),
}

/// Options of `fusion drill capture`.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// The scenario directory to capture (JSON-lines topic files, as `fusion generate` writes).
    #[arg(long, required_unless_present = "kafka", conflicts_with = "kafka")]
    pub input: Option<PathBuf>,
    /// Capture the input topics of this Kafka cluster (read only: nothing is committed or
    /// written there), with the logical times the live run gave (its remap).
    #[arg(long)]
    pub kafka: Option<String>,
    /// Prefix of the Kafka topic names (with --kafka).
    #[arg(long, default_value = "fusion.")]
    pub topic_prefix: String,
    /// Start of the drill period (RFC 3339; with --kafka): the drill's default start. The
    /// records before it are captured too: they rebuild the state the drill starts from.
    #[arg(long)]
    pub from: Option<jiff::Timestamp>,
    /// End of the period (RFC 3339): nothing handed on after it is captured.
    #[arg(long)]
    pub to: Option<jiff::Timestamp>,
    /// The capture file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Length of a logical-time epoch in milliseconds, as the live run had it (the drill
    /// replays with the same).
    #[arg(long, default_value_t = 20)]
    pub epoch_ms: u64,
    /// As the live run had it (`fusion run --future-tolerance`).
    #[arg(long, value_parser = crate::parse_duration, default_value = "1h")]
    pub future_tolerance: std::time::Duration,
    /// As the live run had it (`fusion run --skew-allowance`).
    #[arg(long, value_parser = crate::parse_duration, default_value = "250ms")]
    pub skew_allowance: std::time::Duration,
}

/// Options of `fusion drill run`.
#[derive(Debug, Args)]
pub struct DrillRunArgs {
    /// The drill's name: letters, digits, `-` and `_` (its directory and topic prefix).
    pub name: String,
    /// The capture to replay; without it, the period `--from`..`--to` is first captured
    /// from the live topics of `--kafka` (into the drill's directory).
    #[arg(long, required_unless_present = "kafka")]
    pub capture: Option<PathBuf>,
    /// Prefix of the live topics a capture is taken from (without --capture).
    #[arg(long, default_value = "fusion.")]
    pub topic_prefix: String,
    /// Start of the drill period (RFC 3339, as captured); default: the capture's first record.
    #[arg(long)]
    pub from: Option<jiff::Timestamp>,
    /// End of the drill period (RFC 3339, as captured); default: the capture's last record.
    #[arg(long)]
    pub to: Option<jiff::Timestamp>,
    /// How many times faster than the wall clock the period replays; 0: as fast as it can.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Moves the drill period to start at this instant (RFC 3339): logical times and the
    /// records' own instants move together (rounded to the epoch).
    #[arg(long)]
    pub shift_to: Option<jiff::Timestamp>,
    /// Scripted injects (TOML; see `fusion drill run --help` and the README).
    #[arg(long)]
    pub inject: Option<PathBuf>,
    /// Where drills keep their directories.
    #[arg(long, default_value = "fusion-drills")]
    pub drill_dir: PathBuf,
    /// Replace the directory of an earlier drill of the same name.
    #[arg(long)]
    pub replace: bool,
    /// Deliver to the drill endpoints of this subscriptions file (every endpoint must be
    /// `drill = true`); the delivery intents are written either way when given.
    #[arg(long)]
    pub subscriptions: Option<PathBuf>,
    /// Follow-the-sun roster (default: deploy/config/roster.toml when present).
    #[arg(long)]
    pub roster: Option<PathBuf>,
    /// Warning lists (default: deploy/config/warning-lists.toml when present).
    #[arg(long)]
    pub warning_lists: Option<PathBuf>,
    /// Dataflow worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Write the drill's alerts and dead letters to the `drill.NAME.` topics of this
    /// Kafka cluster too (created if missing; never a live topic); without --capture, the
    /// period is captured from its live topics first (read only).
    #[arg(long)]
    pub kafka: Option<String>,
    /// Evidence window, as for `fusion run` (default 1h).
    #[arg(long)]
    pub evidence_window: Option<String>,
    /// Retention of the summaries, as for `fusion run` (default 30d).
    #[arg(long)]
    pub retention: Option<String>,
    /// Grace before an alert expires, as for `fusion run` (default 7d).
    #[arg(long)]
    pub grace: Option<String>,
    /// Serve the drill desk's API at this address.
    #[arg(long)]
    pub desk_addr: Option<String>,
    /// The desk's officers file.
    #[arg(long)]
    pub officers: Option<PathBuf>,
    /// Never open the desk in this terminal.
    #[arg(long)]
    pub headless: bool,
    /// The token of the officer working the desk in this terminal.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// What `fusion run` needs to run a drill (set by `fusion drill run` only).
#[derive(Debug, Clone, Default)]
pub struct DrillSpec {
    /// The drill's name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// The capture replayed.
    pub capture: PathBuf,
    /// The drill period, logical ms, shifted.
    pub from_ms: u64,
    /// End of the period.
    pub to_ms: u64,
    /// Shift applied, ms.
    pub shift_ms: i64,
    /// Pace.
    pub speed: f64,
    /// The injected records, by time (read once from the inject file).
    pub injects: Vec<capture::Replayed>,
    /// The outage injects.
    pub outages: Vec<inject::Outage>,
}

impl DrillSpec {
    /// The source replaying the capture and injects.
    pub fn source(&self, tolerance_ms: i64) -> anyhow::Result<capture::CaptureSource> {
        let reader = capture::Reader::open(&self.capture)?;
        Ok(capture::CaptureSource::new(
            reader,
            self.injects.clone(),
            self.shift_ms,
            (self.from_ms, self.to_ms),
            self.speed,
            tolerance_ms,
        ))
    }

    /// `roster` with the outages of the injects as overrides.
    pub fn roster(
        &self,
        roster: Option<dataflow::roster::RosterSpec>,
    ) -> anyhow::Result<Option<dataflow::roster::RosterSpec>> {
        if self.outages.is_empty() {
            return Ok(roster);
        }
        let Some(mut roster) = roster else {
            anyhow::bail!(
                "the inject file has an outage, but the drill has no roster (give --roster FILE)"
            );
        };
        let text = |ms: u64| {
            jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX))
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        for o in &self.outages {
            if !roster.centers.iter().any(|c| c.name == o.center) {
                anyhow::bail!("outage inject: the roster has no center {:?}", o.center);
            }
            roster.overrides.push(dataflow::roster::OverrideSpec {
                center: o.takeover.clone(),
                from: text(o.from_ms),
                to: text(o.to_ms),
            });
        }
        dataflow::roster::Roster::compile(&roster)
            .context("the roster with the outage injects is not valid")?;
        Ok(Some(roster))
    }

    /// Wraps `sink` so that it gets only what happens within the drill period.
    pub fn within_period<S: ClosedSink>(&self, sink: S) -> WithinPeriod<S> {
        WithinPeriod {
            sink,
            from_ms: self.from_ms,
            to_ms: self.to_ms,
        }
    }
}

/// Runs `fusion drill …`.
pub fn drill(cmd: DrillCommand) -> anyhow::Result<()> {
    match cmd {
        DrillCommand::Capture(args) => match &args.input {
            Some(_) => capture_dir(args),
            None => capture_kafka(args),
        },
        DrillCommand::Run(args) => run(*args),
        DrillCommand::Report(args) => report::report(args),
    }
}

/// `fusion run`'s arguments from `argv` (without the program name), as the command line
/// would give them: the drill's settings go through the same checks.
fn run_args(argv: &[String]) -> anyhow::Result<RunArgs> {
    let cmd = <RunArgs as Args>::augment_args(clap::Command::new("run").no_binary_name(true));
    let matches = cmd
        .try_get_matches_from(argv)
        .map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    Ok(RunArgs::from_arg_matches(&matches)?)
}

fn capture_dir(args: CaptureArgs) -> anyhow::Result<()> {
    let Some(input) = &args.input else {
        anyhow::bail!("give --input DIR or --kafka BROKERS");
    };
    if args.from.is_some() || args.to.is_some() {
        anyhow::bail!(
            "--from and --to apply to --kafka; a directory is captured whole (give them to `fusion drill run`)"
        );
    }
    let argv: Vec<String> = [
        "--input".into(),
        input.display().to_string(),
        "--epoch-ms".into(),
        args.epoch_ms.to_string(),
        "--capture-out".into(),
        args.out.display().to_string(),
        "--headless".into(),
    ]
    .to_vec();
    crate::run::run(run_args(&argv)?)?;
    let truth = input.join(scenario::TRUTH_FILE);
    if truth.exists() {
        let to = truth_beside(&args.out);
        std::fs::copy(&truth, &to)
            .with_context(|| format!("cannot copy {} to {}", truth.display(), to.display()))?;
    }
    println!("capture written to {}", args.out.display());
    Ok(())
}

/// Captures the input topics of a broker, read only: the records in the order and with
/// the logical times the live run gave them (a [`ingest::kafka::KafkaSource`] replaying
/// the retained input with the live run's remap, through the router), without matching.
fn capture_kafka(args: CaptureArgs) -> anyhow::Result<()> {
    use ingest::kafka::{KafkaConfig, KafkaSource};
    let Some(brokers) = &args.kafka else {
        anyhow::bail!("give --input DIR or --kafka BROKERS");
    };
    let ms = |t: &jiff::Timestamp| u64::try_from(t.as_millisecond()).unwrap_or(0);
    let to = args.to.as_ref().map_or(u64::MAX, ms);
    let from = args.from.as_ref().map_or(0, ms);
    if to < from {
        anyhow::bail!("--to is before --from");
    }
    let cfg = KafkaConfig {
        prefix: args.topic_prefix.clone(),
        // Its own group, never committed to: a capture leaves no trace on the broker.
        group_id: format!("fusion-drill-capture-{}", std::process::id()),
        ..KafkaConfig::new(brokers)
    };
    let tolerance_ms = i64::try_from(args.future_tolerance.as_millis()).unwrap_or(i64::MAX);
    let skew_ms = i64::try_from(args.skew_allowance.as_millis()).unwrap_or(i64::MAX);
    let source = KafkaSource::open(&cfg)
        .with_context(|| format!("cannot read the topics of {brokers}"))?
        .with_future_tolerance(tolerance_ms)
        .with_skew_allowance(skew_ms)
        .stop_when_caught_up()
        .read_only();
    let period = (args.from.is_some() || args.to.is_some()).then_some((from, to));
    let mut recorder = capture::Recorder::create_for(
        Box::new(source),
        &args.out,
        args.epoch_ms,
        format!("kafka {brokers} prefix {}", args.topic_prefix),
        period,
    )?;
    let written = Arc::clone(&recorder.written);
    // The router's clock gives each record its logical time; nothing is matched.
    let (tx, rx) = crossbeam_channel::unbounded();
    let drain = std::thread::spawn(move || while rx.recv().is_ok() {});
    let router = ingest::Router::with_prepare(vec![tx], args.epoch_ms, |_| ());
    let config = ingest::IngestConfig {
        topic_prefix: args.topic_prefix.clone(),
        future_tolerance_ms: tolerance_ms,
        ..ingest::IngestConfig::default()
    };
    let mut ingestor = ingest::Ingestor::new(
        config,
        router,
        ingest::MemoryDeadLetters::with_limit(0),
        Arc::default(),
    );
    let bar = indicatif::ProgressBar::new_spinner().with_message("capturing");
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let bar = bar.clone();
        let done = Arc::clone(&done);
        let written = Arc::clone(&written);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                bar.set_message(format!(
                    "{} records captured",
                    written.load(Ordering::Relaxed)
                ));
                bar.tick();
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })
    };
    let stop = AtomicBool::new(false);
    let result = ingestor.run(&mut recorder, &stop);
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    drop(ingestor);
    let _ = drain.join();
    result.context("the capture stopped")?;
    bar.finish_and_clear();
    println!(
        "capture written to {}: {} records",
        args.out.display(),
        written.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Where a capture's ground truth (of a generated scenario) is kept: beside it.
fn truth_beside(capture: &Path) -> PathBuf {
    let mut name = capture.file_name().unwrap_or_default().to_os_string();
    name.push(".truth.json");
    capture.with_file_name(name)
}

/// A valid drill name: letters, digits, `-` and `_`, at most 64.
fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        anyhow::bail!(
            "{name:?} is not a drill name: use 1 to 64 letters, digits, '-' or '_' (it names a directory and topics)"
        );
    }
    Ok(())
}

/// The first and last logical time of a capture's records (of those with a readable time).
fn capture_span(path: &Path) -> anyhow::Result<(capture::Header, Option<(u64, u64)>)> {
    let mut reader = capture::Reader::open(path)?;
    let mut span: Option<(u64, u64)> = None;
    while let Some(line) = reader.next_line()? {
        // A record whose own time could not be read (dead-lettered) does not start the period.
        if line.timestamp_ms <= ingest::files::UNREADABLE_TIME_MS {
            continue;
        }
        span = Some(match span {
            None => (line.time_ms, line.time_ms),
            Some((a, b)) => (a.min(line.time_ms), b.max(line.time_ms)),
        });
    }
    Ok((reader.header, span))
}

/// The endpoints of `subs` that are not drill endpoints, named for people.
fn live_endpoints(subs: &delivery::Subscriptions) -> Vec<String> {
    subs.bureaus
        .iter()
        .filter(|b| !b.recipient.drill)
        .map(|b| format!("bureau {}", b.recipient.id))
        .chain(
            subs.partners
                .iter()
                .filter(|p| !p.drill)
                .map(|p| format!("partner {}", p.id)),
        )
        .collect()
}

/// What `drill.json` says of a drill.
#[derive(Debug, Serialize)]
struct Meta<'a> {
    name: &'a str,
    from_ms: u64,
    to_ms: u64,
    shift_ms: i64,
    speed: f64,
    source: String,
    workers: usize,
}

fn run(args: DrillRunArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    if !(args.speed >= 0.0 && args.speed.is_finite()) {
        anyhow::bail!(
            "--speed {} must be 0 (as fast as it can) or above",
            args.speed
        );
    }
    // Isolation first: nothing starts if any endpoint is live.
    if let Some(path) = &args.subscriptions {
        let subs = delivery::Subscriptions::load(path)
            .with_context(|| format!("cannot load the subscriptions {}", path.display()))?;
        let live = live_endpoints(&subs);
        if !live.is_empty() {
            anyhow::bail!(
                "the drill refuses to start: {} in {} {} not flagged `drill = true` (a drill delivers to drill endpoints only)",
                live.join(", "),
                path.display(),
                if live.len() == 1 { "is" } else { "are" }
            );
        }
    }
    let dir = args.drill_dir.join(&args.name);
    if dir.exists() && !args.replace {
        anyhow::bail!(
            "the drill {} already ran in {}; give --replace to run it again from scratch, or another name",
            args.name,
            dir.display()
        );
    }
    let capture_path = match (&args.capture, &args.kafka) {
        (Some(path), _) => path.clone(),
        (None, Some(brokers)) => {
            // Beside the drill's directory until it is made (a failed drill leaves none).
            std::fs::create_dir_all(&args.drill_dir)
                .with_context(|| format!("cannot create {}", args.drill_dir.display()))?;
            let out = args.drill_dir.join(format!(".{}.capture.jsonl", args.name));
            capture_kafka(CaptureArgs {
                input: None,
                kafka: Some(brokers.clone()),
                topic_prefix: args.topic_prefix.clone(),
                from: args.from,
                to: args.to,
                out: out.clone(),
                epoch_ms: 20,
                future_tolerance: std::time::Duration::from_secs(3600),
                skew_allowance: std::time::Duration::from_millis(250),
            })?;
            out
        }
        (None, None) => {
            anyhow::bail!("give --capture FILE, or --kafka BROKERS to capture the period")
        }
    };
    let (header, span) = capture_span(&capture_path)?;
    let Some((first, last)) = span else {
        anyhow::bail!("the capture {} holds no record", capture_path.display());
    };
    let ms = |t: &jiff::Timestamp| u64::try_from(t.as_millisecond()).unwrap_or(0);
    let from = args
        .from
        .as_ref()
        .map_or(header.from_ms.unwrap_or(first), ms);
    let to = args
        .to
        .as_ref()
        .map_or(header.to_ms.filter(|t| *t != u64::MAX).unwrap_or(last), ms);
    if to < from {
        anyhow::bail!("--to is before --from");
    }
    let epoch = header.epoch_ms.max(1);
    let shift_ms = match &args.shift_to {
        Some(t) => {
            let raw = t.as_millisecond() - i64::try_from(from).unwrap_or(i64::MAX);
            // Whole epochs, so every record keeps its place in its epoch.
            let e = i64::try_from(epoch).unwrap_or(1);
            raw.div_euclid(e) * e
        }
        None => 0,
    };
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let capture_path = if args.capture.is_none() {
        let kept = dir.join("capture.jsonl");
        std::fs::rename(&capture_path, &kept)
            .with_context(|| format!("cannot move the capture into {}", dir.display()))?;
        kept
    } else {
        capture_path
    };
    // The injects are read and checked once, before anything runs.
    let injects = match &args.inject {
        Some(path) => inject::load(path, capture::shift_time(from, shift_ms), epoch)?,
        None => inject::Injects::default(),
    };
    let spec = DrillSpec {
        name: args.name.clone(),
        dir: dir.clone(),
        capture: capture_path.clone(),
        from_ms: capture::shift_time(from, shift_ms),
        to_ms: capture::shift_time(to, shift_ms),
        shift_ms,
        speed: args.speed,
        injects: injects.records,
        outages: injects.outages,
    };
    // What the injects do, for the report.
    let mut listed = std::fs::File::create(dir.join("injects.jsonl"))?;
    for a in &injects.applied {
        serde_json::to_writer(&mut listed, a)?;
        listed.write_all(b"\n")?;
    }
    let meta = Meta {
        name: &args.name,
        from_ms: spec.from_ms,
        to_ms: spec.to_ms,
        shift_ms,
        speed: args.speed,
        source: format!("{} ({})", capture_path.display(), header.source),
        workers: args.workers,
    };
    std::fs::write(dir.join("drill.json"), serde_json::to_vec_pretty(&meta)?)?;
    let truth = truth_beside(&capture_path);
    if truth.exists() {
        std::fs::copy(&truth, dir.join("truth.json"))?;
    }

    let path = |f: &str| dir.join(f).display().to_string();
    let mut argv: Vec<String> = vec![
        "--alerts-out".into(),
        path("alerts.jsonl"),
        "--routing-out".into(),
        path("routing.jsonl"),
        "--deadletters-out".into(),
        path("deadletters.jsonl"),
        "--outbox".into(),
        path("outbox"),
        "--workers".into(),
        args.workers.to_string(),
        "--epoch-ms".into(),
        epoch.to_string(),
        "--topic-prefix".into(),
        format!("drill.{}.", args.name),
        "--group".into(),
        format!("fusion-drill-{}", args.name),
    ];
    let mut pass = |flag: &str, v: Option<String>| {
        if let Some(v) = v {
            argv.push(flag.into());
            argv.push(v);
        }
    };
    let shown = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    pass("--subscriptions", shown(&args.subscriptions));
    pass("--roster", shown(&args.roster));
    pass("--warning-lists", shown(&args.warning_lists));
    pass("--evidence-window", args.evidence_window.clone());
    pass("--retention", args.retention.clone());
    pass("--grace", args.grace.clone());
    pass("--desk-addr", args.desk_addr.clone());
    pass("--kafka", args.kafka.clone());
    pass("--officers", shown(&args.officers));
    pass("--token-file", shown(&args.token_file));
    if args.headless {
        argv.push("--headless".into());
    }
    if let Some(brokers) = &args.kafka {
        // The drill's own topics; a drill never writes to a live one.
        let cfg = ingest::kafka::KafkaConfig {
            prefix: format!("drill.{}.", args.name),
            ..ingest::kafka::KafkaConfig::new(brokers)
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(ingest::kafka::create_topics(&cfg))
            .with_context(|| format!("cannot create the drill's topics on {brokers}"))?;
    }
    let mut run_args = run_args(&argv)?;
    run_args.drill = Some(spec);
    println!(
        "drill {}: replaying {} into {} (speed {}, shift {} ms)",
        args.name,
        capture_path.display(),
        dir.display(),
        if args.speed == 0.0 {
            "max".to_string()
        } else {
            format!("{}×", args.speed)
        },
        shift_ms
    );
    crate::run::run(run_args)?;
    println!(
        "drill {} done; score it with `fusion drill report {}`",
        args.name, args.name
    );
    Ok(())
}

/// A sink that gets only the changes at times within the drill period: what happens
/// before it only rebuilds the state the drill starts from (it was delivered live).
pub struct WithinPeriod<S> {
    sink: S,
    from_ms: u64,
    to_ms: u64,
}

impl<S: ClosedSink> ClosedSink for WithinPeriod<S> {
    fn name(&self) -> String {
        self.sink.name()
    }

    fn alerts_early(&self) -> bool {
        self.sink.alerts_early()
    }

    fn closed(&mut self, closed: &Closed<'_>) -> Result<(), SinkError> {
        let inside = |t: &u64| *t >= self.from_ms && *t <= self.to_ms;
        let routing: Vec<_> = closed
            .routing
            .iter()
            .filter(|(t, _)| inside(t))
            .cloned()
            .collect();
        let alerts: Vec<_> = closed
            .alerts
            .iter()
            .filter(|(t, _)| inside(t))
            .cloned()
            .collect();
        if routing.is_empty() && alerts.is_empty() {
            return Ok(());
        }
        self.sink.closed(&Closed {
            bound: closed.bound,
            routing: &routing,
            alerts: &alerts,
        })
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.sink.finish()
    }
}

/// Writes the deliveries the alert changes of the drill would cause, per bureau, as
/// `deliveries.jsonl` (the egress rule's decision and its reason).
pub struct DeliveryIntents {
    subs: delivery::Subscriptions,
    out: std::io::BufWriter<std::fs::File>,
    name: String,
}

impl DeliveryIntents {
    /// Intents for the bureaus of `subs`, written to `path`.
    pub fn create(subs: delivery::Subscriptions, path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self {
            subs,
            out: std::io::BufWriter::new(file),
            name: format!("the delivery intents {}", path.display()),
        })
    }
}

/// One line of `deliveries.jsonl`.
#[derive(Debug, Serialize)]
struct Intent<'a> {
    alert_id: &'a str,
    version: u64,
    change: schemas::ChangeKind,
    recipient: &'a str,
    decision: &'static str,
    reason: String,
}

impl ClosedSink for DeliveryIntents {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn alerts_early(&self) -> bool {
        true
    }

    fn closed(&mut self, closed: &Closed<'_>) -> Result<(), SinkError> {
        use schemas::sharing::{Decision, decide};
        for (_, changes) in closed.alerts {
            for c in changes {
                for b in &self.subs.bureaus {
                    let (decision, reason) = match decide(&c.alert, &b.recipient, &self.subs.policy)
                    {
                        Decision::Deliver(_) => ("deliver", "allowed by the egress rule".into()),
                        Decision::Withhold(w) => ("withhold", w.to_string()),
                    };
                    serde_json::to_writer(
                        &mut self.out,
                        &Intent {
                            alert_id: &c.alert.id,
                            version: c.version,
                            change: c.change,
                            recipient: &b.recipient.id,
                            decision,
                            reason,
                        },
                    )?;
                    self.out.write_all(b"\n")?;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.
mod tests {
    use super::*;

    #[test]
    fn drill_names_are_plain() {
        assert!(check_name("ex-2026_1").is_ok());
        for bad in ["", "a.b", "../x", "x y", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn drill_settings_go_through_run_s_own_checks() {
        let a = run_args(&["--epoch-ms".into(), "40".into()]).unwrap();
        assert!(a.drill.is_none());
        let e = run_args(&["--epoch-ms".into(), "forty".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("forty"), "{e:#}");
    }
}
