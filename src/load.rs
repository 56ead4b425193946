//! `fusion load`: the load driver. Generated traffic at a steady rate goes into the same
//! `fusion run` code path as ever (the embedded source, or the input topics of a Kafka
//! cluster with `--kafka`); it measures the sustained rate, the latency from a record's
//! ingestion to the alert change it causes (p50, p99, max), the CPU used and the memory
//! (peak RSS, sampled every second, so a soak shows whether it plateaus), shows a
//! progress bar and writes a JSON report.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::{Args, Parser};
use ingest::IngestStats;
use ingest::latency::LatencyProbe;
use serde::Serialize;

use crate::run::{Hooks, RunArgs};

/// Options of `fusion load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Events per second of generated traffic (per second of the scenario's clock).
    #[arg(long, default_value_t = 100_000)]
    rate: u32,
    /// How long to drive it (wall time).
    #[arg(long, default_value = "60s", value_parser = crate::parse_duration)]
    duration: Duration,
    /// The scenario's clock runs this many times faster than the wall clock (a soak).
    #[arg(long, default_value_t = 1)]
    speed: u32,
    /// Drive `fusion run --kafka` through this cluster: the generated records are
    /// published to its input topics at the rate, and consumed from there.
    #[arg(long)]
    kafka: Option<String>,
    /// Prefix of the Kafka topic names.
    #[arg(long, default_value = "fusion.")]
    topic_prefix: String,
    /// Where the JSON report goes.
    #[arg(long, default_value = "load-report.json")]
    report: PathBuf,
    /// Seed of the scenario.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Dataflow worker threads (as `fusion run`: the cores minus one, at least one).
    #[arg(long, default_value_t = crate::run::default_workers())]
    workers: usize,
    /// Evidence window (as `fusion run`).
    #[arg(long)]
    evidence_window: Option<String>,
    /// Summary retention (as `fusion run`).
    #[arg(long)]
    retention: Option<String>,
    /// Expiry grace (as `fusion run`).
    #[arg(long)]
    grace: Option<String>,
    /// Longest validity of an indicator after its modification (as `fusion run`).
    #[arg(long)]
    indicator_max_age: Option<String>,
    /// No progress bar (for logs).
    #[arg(long)]
    no_progress: bool,
}

/// `fusion run`'s options, parsed from words (the driver runs the real command path).
#[derive(Parser, Debug)]
struct RunCli {
    #[command(flatten)]
    run: RunArgs,
}

/// Percentiles of the latency samples, in milliseconds.
#[derive(Serialize, Debug, Default)]
struct Latency {
    samples: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// One memory sample.
#[derive(Serialize, Debug)]
struct MemorySample {
    at_s: f64,
    rss_mb: f64,
    events: u64,
}

/// The JSON report.
#[derive(Serialize, Debug)]
struct Report {
    source: &'static str,
    target_events_per_s: u32,
    speed: u32,
    workers: usize,
    duration_s: f64,
    events: u64,
    sustained_events_per_s: f64,
    /// Ingestion to alert change, per closed logical time with an opened or updated alert.
    latency: Latency,
    cpu_user_s: f64,
    cpu_system_s: f64,
    /// CPU seconds per wall second (2.0 = both cores busy).
    cores_used: f64,
    peak_rss_mb: f64,
    /// Peak RSS over each fifth of the run, in order (a soak plateaus when the last is
    /// within 15 % of the second).
    peak_rss_by_fifth_mb: Vec<f64>,
    memory: Vec<MemorySample>,
}

/// CPU seconds (user, system) of this process so far, from /proc/self/stat.
fn cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user / ticks, system / ticks))
}

/// Resident set size of this process now, in MB.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[at.min(sorted.len() - 1)]) / 1000.0
}

/// Runs the load (see the module documentation).
pub fn load(args: LoadArgs) -> anyhow::Result<()> {
    let mut words: Vec<String> = vec![
        "fusion".into(),
        "--rate".into(),
        args.rate.to_string(),
        "--speed".into(),
        args.speed.to_string(),
        "--seed".into(),
        args.seed.to_string(),
        "--workers".into(),
        args.workers.to_string(),
        "--duration".into(),
        format!("{}ms", args.duration.as_millis()),
        "--headless".into(),
    ];
    for (flag, value) in [
        ("--evidence-window", &args.evidence_window),
        ("--retention", &args.retention),
        ("--grace", &args.grace),
        ("--indicator-max-age", &args.indicator_max_age),
    ] {
        if let Some(v) = value {
            words.push(flag.into());
            words.push(v.clone());
        }
    }
    let publisher = match &args.kafka {
        Some(brokers) => {
            words.extend([
                "--kafka".into(),
                brokers.clone(),
                "--topic-prefix".into(),
                args.topic_prefix.clone(),
                "--group".into(),
                format!("fusion-load-{}", args.seed),
            ]);
            Some(brokers.clone())
        }
        None => None,
    };
    let run_args = RunCli::try_parse_from(&words)
        .map_err(|e| anyhow!("internal: the run options did not parse: {e}"))?
        .run;

    let stats = Arc::new(IngestStats::default());
    let hooks = Hooks {
        latency: Some(Arc::new(LatencyProbe::new())),
        samples: Arc::default(),
        stats: Some(Arc::clone(&stats)),
        quiet: true,
    };
    let done = Arc::new(AtomicBool::new(false));
    let producer = match publisher {
        Some(brokers) => Some(crate::kafka_cli::spawn_load_publisher(
            &brokers,
            &args.topic_prefix,
            args.seed,
            args.rate,
            Arc::clone(&done),
        )?),
        None => None,
    };
    let started = Instant::now();
    let cpu_before = cpu_seconds().unwrap_or_default();
    let bar = (!args.no_progress).then(|| {
        let bar = indicatif::ProgressBar::new(args.duration.as_secs().max(1));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let memory = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = {
        let memory = Arc::clone(&memory);
        let stats = Arc::clone(&stats);
        let done = Arc::clone(&done);
        let bar = bar.clone();
        let samples = Arc::clone(&hooks.samples);
        std::thread::Builder::new()
            .name("load-sampler".into())
            .spawn(move || {
                let mut last = (Instant::now(), 0u64);
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1000));
                    let events = stats.events.load(Ordering::Relaxed);
                    let rss = rss_mb();
                    if let Ok(mut m) = memory.lock() {
                        m.push(MemorySample {
                            at_s: started.elapsed().as_secs_f64(),
                            rss_mb: rss,
                            events,
                        });
                    }
                    if let Some(bar) = &bar {
                        let rate = (events - last.1) as f64 / last.0.elapsed().as_secs_f64();
                        let alerts = samples.lock().map_or(0, |s| s.len());
                        bar.set_position(started.elapsed().as_secs());
                        bar.set_message(format!(
                            "{events} events, {rate:.0}/s, {rss:.0} MB, {alerts} alert times"
                        ));
                    }
                    last = (Instant::now(), events);
                }
            })?
    };
    let outcome = crate::run::run_with(run_args, hooks.clone());
    done.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = cpu_seconds().unwrap_or_default();
    let _ = sampler.join();
    if let Some(p) = producer {
        p.join()
            .map_err(|_| anyhow!("the load publisher panicked"))??;
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    outcome?;

    let mut samples = hooks
        .samples
        .lock()
        .map_err(|_| anyhow!("latency samples poisoned"))?
        .clone();
    samples.sort_unstable();
    let memory = std::mem::take(
        &mut *memory
            .lock()
            .map_err(|_| anyhow!("memory samples poisoned"))?,
    );
    let fifths: Vec<f64> = (0..5)
        .map(|i| {
            let n = memory.len();
            memory[n * i / 5..n * (i + 1) / 5]
                .iter()
                .map(|m| m.rss_mb)
                .fold(0.0, f64::max)
        })
        .collect();
    let events = stats.events.load(Ordering::Relaxed);
    let (user, system) = (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1);
    let report = Report {
        source: if args.kafka.is_some() {
            "kafka"
        } else {
            "embedded"
        },
        target_events_per_s: args.rate,
        speed: args.speed,
        workers: args.workers,
        duration_s: elapsed,
        events,
        sustained_events_per_s: events as f64 / elapsed.max(1e-9),
        latency: Latency {
            samples: samples.len(),
            p50_ms: percentile(&samples, 0.5),
            p99_ms: percentile(&samples, 0.99),
            max_ms: samples.last().map_or(0.0, |m| f64::from(*m) / 1000.0),
        },
        cpu_user_s: user,
        cpu_system_s: system,
        cores_used: (user + system) / elapsed.max(1e-9),
        peak_rss_mb: memory.iter().map(|m| m.rss_mb).fold(0.0, f64::max),
        peak_rss_by_fifth_mb: fifths,
        memory,
    };
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(&args.report, &text)
        .with_context(|| format!("cannot write the report {}", args.report.display()))?;
    println!(
        "load: {} events in {:.1}s ({:.0}/s, target {}), latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples), {:.2} cores, peak RSS {:.0} MB; report in {}",
        report.events,
        report.duration_s,
        report.sustained_events_per_s,
        report.target_events_per_s,
        report.latency.p50_ms,
        report.latency.p99_ms,
        report.latency.max_ms,
        report.latency.samples,
        report.cores_used,
        report.peak_rss_mb,
        args.report.display()
    );
    Ok(())
}
