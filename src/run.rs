//! `fusion run`: wires a source, ingest, the dataflow and the alert output.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use fusion::output::{
    AlertTopic, AlertsFile, Closed, ClosedSink, LatencySink, OutboxSink, OutputLoop, OutputStats,
    RejectedActions, RoutingFile, SinkError,
};
use fusion::supervise::{BoxError, ComponentResult, Role, Supervisor};

use dataflow::history::TierConfig;
use dataflow::roster::{Roster, RosterSpec};
use dataflow::runtime::Output;
use dataflow::views::warning_lists::{self, WarningEntry};
use ingest::embedded::EmbeddedSource;
use ingest::files::JsonLinesDir;
use ingest::kafka::{KafkaAlerts, KafkaConfig, KafkaDeadLetters, KafkaSource};
use ingest::{
    DeadLetterSink, IngestConfig, IngestStats, Ingestor, JsonLinesDeadLetters, MemoryDeadLetters,
    Router, Source,
};

/// Options of `fusion run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Consume the input topics of this Kafka cluster (bootstrap servers) and write alerts
    /// and dead letters to its output topics.
    #[arg(long)]
    kafka: Option<String>,
    /// With --kafka: stop once every input partition has been read to its end.
    #[arg(long)]
    stop_when_caught_up: bool,
    /// Prefix of the Kafka topic names.
    #[arg(long, default_value = "fusion.")]
    topic_prefix: String,
    /// Kafka consumer group of the fusion center.
    #[arg(long, default_value = "fusion")]
    group: String,
    /// Read JSON-lines topic files from this directory (as `fusion generate` writes) instead of the embedded generator.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Seed of the embedded scenario.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Events per second of the embedded scenario (per second of its clock).
    #[arg(long, default_value_t = 10_000)]
    rate: u32,
    /// How many times faster than the wall clock the embedded scenario's clock runs (a
    /// soak compresses hours of logical time: windows, expiries and handovers, into minutes).
    #[arg(long, default_value_t = 1)]
    speed: u32,
    /// Stop after this long (e.g. 30s, 5m); default: until Ctrl-C (or the end of --input).
    #[arg(long, value_parser = crate::parse_duration)]
    duration: Option<Duration>,
    /// Write alert changes as JSON lines to this file.
    #[arg(long)]
    alerts_out: Option<PathBuf>,
    /// Write dead letters as JSON lines to this file.
    #[arg(long)]
    deadletters_out: Option<PathBuf>,
    /// Dataflow worker threads. Default: one per core left beside the ingest thread (the
    /// cores minus one, at least one): on two cores one worker replays W1 faster and in less
    /// memory than two, which would share the cores with ingest.
    #[arg(long, default_value_t = default_workers())]
    workers: usize,
    /// Length of a logical-time epoch in milliseconds.
    #[arg(long, default_value_t = 20)]
    epoch_ms: u64,
    /// How long events are kept whole as alert evidence (event ids, victims, accounts) for
    /// retroactive matching, in logical time after ingestion; beyond it, only hourly
    /// summaries. Default: 1h; 10m on the embedded scenario.
    #[arg(long, value_parser = crate::parse_duration)]
    evidence_window: Option<Duration>,
    /// How long the (observable, sensor, hour) summaries of the history are kept for
    /// retroactive matching, after the end of their hour. Default: 30d; 6h on the embedded
    /// scenario, which compresses each campaign into seconds.
    #[arg(long, value_parser = crate::parse_duration)]
    retention: Option<Duration>,
    /// How long an alert whose window (its UTC day of event time) has passed stays open
    /// without changing before it closes as expired. Default: 7d; 1h on the embedded scenario.
    #[arg(long, value_parser = crate::parse_duration)]
    grace: Option<Duration>,
    /// The longest an indicator version stays valid after its `modified` time: one without
    /// `valid_until`, or with a later one, stops matching then (its source keeps it by
    /// publishing it again), so the indicators held do not grow for ever. Default: 90d.
    #[arg(long, value_parser = crate::parse_duration, default_value = "90d")]
    indicator_max_age: Duration,
    /// How far ahead of its source's clock a record may be stamped: of the wall clock on
    /// Kafka, of the replay's own progress with --input. A record further ahead is a dead
    /// letter (`future_timestamp`) instead of moving the logical clock for everyone.
    #[arg(long, value_parser = crate::parse_duration, default_value = "1h")]
    future_tolerance: Duration,
    /// With --kafka: how much earlier than the broker's last word on an idle partition's
    /// end a record appended to it may be stamped and still count at its own time (later
    /// ones are counted as late, at the clock). Also the latency an idle partition adds.
    #[arg(long, value_parser = crate::parse_duration, default_value = "250ms")]
    skew_allowance: Duration,
    /// Follow-the-sun roster: alerts are routed to the center on duty, handed over and
    /// escalated. Default: deploy/config/roster.toml when present.
    #[arg(long)]
    roster: Option<PathBuf>,
    /// Warning lists of known-benign values whose matches are suppressed; the file is
    /// re-read whenever it changes. Default: deploy/config/warning-lists.toml when present.
    #[arg(long)]
    warning_lists: Option<PathBuf>,
    /// Write routing changes (owner and state per alert, escalations, handover digests,
    /// duty changes, rejected officer actions) as JSON lines to this file.
    #[arg(long)]
    routing_out: Option<PathBuf>,
    /// Deliver alerts by signed webhooks to the bureaus and partners of this subscriptions file.
    #[arg(long)]
    subscriptions: Option<PathBuf>,
    /// Directory of the durable delivery outbox (with --subscriptions).
    #[arg(long, default_value = "fusion-outbox")]
    outbox: PathBuf,
    /// Records larger than this many bytes are dead-lettered unparsed.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_record_bytes: usize,
    /// Serve Prometheus metrics at http://ADDR/metrics (and a liveness probe at /healthz);
    /// port 0 picks a free port, logged at start.
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
    // --- desk (issue 11) ---
    /// Serve the duty desk's API at http://ADDR/api (with /healthz, /readyz, /metrics);
    /// port 0 picks a free port, logged at start.
    #[arg(long)]
    desk_addr: Option<std::net::SocketAddr>,
    /// The desk's officers file (`fusion officer add` writes it).
    #[arg(long, default_value = crate::desk::DEFAULT_OFFICERS)]
    officers: PathBuf,
    /// Never open the desk in this terminal (it opens by itself when stdout is one).
    #[arg(long)]
    headless: bool,
    /// The token of the officer working the desk in this terminal (default: a console
    /// officer of the center on duty, for this run only).
    #[arg(long)]
    token_file: Option<PathBuf>,
    // --- end desk ---
    /// Record every input record with the logical time it was handed on at to this capture
    /// file (JSON lines), for exercise drills (`fusion drill run NAME --capture FILE`).
    #[arg(long)]
    capture_out: Option<PathBuf>,
    /// Set by `fusion drill run` only.
    #[arg(skip)]
    pub(crate) drill: Option<crate::drill::DrillSpec>,
}

/// The configuration file `given`, or the shipped `default` when none is given and it exists.
fn config_file<'a>(given: Option<&'a Path>, default: &'static str) -> Option<&'a Path> {
    given.or_else(|| Some(Path::new(default)).filter(|p| p.exists()))
}

/// The roster at `path`, or at deploy/config/roster.toml when none is named and it exists;
/// a roster that fails its check for the next two years is refused.
fn load_roster(path: Option<&Path>) -> anyhow::Result<Option<RosterSpec>> {
    let Some(path) = config_file(path, "deploy/config/roster.toml") else {
        tracing::info!("no roster: alerts are not routed (give --roster FILE)");
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the roster {}", path.display()))?;
    let roster = Roster::from_toml(&text)
        .with_context(|| format!("the roster {} is not valid", path.display()))?;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let findings = roster.check(today, 730);
    if !findings.is_empty() {
        let zones = roster.zones();
        let listed: Vec<String> = findings.iter().map(|f| f.describe(&zones)).collect();
        anyhow::bail!(
            "the roster {} fails its check (`fusion roster check` for details):\n{}",
            path.display(),
            listed.join("\n")
        );
    }
    tracing::info!(roster = %path.display(), "routing alerts with the roster");
    Ok(Some(dataflow::roster::parse(&text)?))
}

/// How often the warning-list file is checked for changes.
const WARNING_LISTS_POLL: Duration = Duration::from_secs(2);

/// The warning lists at `path`, or at deploy/config/warning-lists.toml when none is named
/// and it exists, with the file they came from.
fn load_warning_lists(path: Option<&Path>) -> anyhow::Result<Option<(PathBuf, Vec<WarningEntry>)>> {
    let Some(path) = config_file(path, "deploy/config/warning-lists.toml") else {
        tracing::info!("no warning lists: no match is suppressed (give --warning-lists FILE)");
        return Ok(None);
    };
    let entries = read_warning_lists(path)?;
    tracing::info!(lists = %path.display(), entries = entries.len(), "suppressing matches on warning lists");
    Ok(Some((path.to_path_buf(), entries)))
}

fn read_warning_lists(path: &Path) -> anyhow::Result<Vec<WarningEntry>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the warning lists {}", path.display()))?;
    warning_lists::parse(&text)
        .with_context(|| format!("the warning lists {} are not valid", path.display()))
}

/// Watches the warning-list file and sends its entries each time it changes; a
/// changed file that does not parse is reported and the lists in force stay.
fn watch_warning_lists(
    path: PathBuf,
    reloads: crossbeam_channel::Sender<Vec<WarningEntry>>,
    stop: Arc<AtomicBool>,
) -> impl FnOnce() -> ComponentResult + Send + 'static {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| Ok((m.modified()?, m.len())))
            .ok()
    };
    let mut seen = stamp(&path);
    move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(WARNING_LISTS_POLL);
            let now = stamp(&path);
            if now == seen {
                continue;
            }
            seen = now;
            match read_warning_lists(&path) {
                Ok(entries) => {
                    tracing::info!(lists = %path.display(), entries = entries.len(), "warning lists reloaded");
                    if reloads.send(entries).is_err() {
                        // The dataflow is gone: the run is ending.
                        return Ok(());
                    }
                }
                Err(e) => tracing::error!(
                    "{e:#}; the warning lists in force stay until the file is corrected"
                ),
            }
        }
        Ok(())
    }
}

/// Bound of each worker's input channel, in batches of up to [`ingest::router::BATCH`]
/// records: back-pressure on the source when the dataflow lags.
const FEED_CAPACITY: usize = 8;

/// Bound of the channel from the dataflow workers to the output thread, in messages: a
/// slow output (a broker away, a full disk) holds the workers back, and through their
/// feeds the source, instead of filling memory.
const OUTPUT_CAPACITY: usize = 16 * 1024;

/// How long the delivery thread gets to end once told to.
const DELIVERY_STOP: Duration = Duration::from_secs(5);

/// How long a stopping run gives the outbox to deliver what is pending (the rest
/// stays in the outbox for the next run).
const DELIVERY_GRACE: Duration = Duration::from_secs(10);

/// How long a stopping run waits for its last outputs to become durable before it
/// commits what it can (the rest is read again on restart).
const FINISH_WAIT: Duration = Duration::from_secs(30);

/// What a load driver observes of a run (see `fusion load`).
#[derive(Default, Clone)]
pub struct Hooks {
    /// Stamps the ingestion of each logical time; alert changes are then timed against it.
    pub latency: Option<Arc<ingest::latency::LatencyProbe>>,
    /// Ingestion-to-alert-change latencies, in microseconds.
    pub samples: Arc<std::sync::Mutex<Vec<u32>>>,
    /// The ingest counters, shared with the driver.
    pub stats: Option<Arc<IngestStats>>,
    /// No summary line per second (the driver shows its own progress).
    pub quiet: bool,
}

/// Dataflow workers by default: the cores minus the ingest thread's, at least one.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    run_with(args, Hooks::default())
}

/// [`run`], observed through `hooks`.
pub fn run_with(args: RunArgs, hooks: Hooks) -> anyhow::Result<()> {
    let workers = args.workers.max(1);
    let mut supervisor = Supervisor::default();
    let stop = supervisor.stop_flag();
    let abort = supervisor.abort_flag();
    {
        let signals = supervisor.signals();
        ctrlc::set_handler(move || {
            signals.fetch_add(1, Ordering::SeqCst);
        })
        .context("cannot install the Ctrl-C handler")?;
    }

    let metrics = ingest::metrics::KafkaMetrics::new();
    if let Some(addr) = args.metrics_addr {
        crate::metrics_http::serve(addr, metrics.clone())?;
    }
    let kafka = args.kafka.as_ref().map(|brokers| KafkaConfig {
        prefix: args.topic_prefix.clone(),
        group_id: args.group.clone(),
        metrics: metrics.clone(),
        ..KafkaConfig::new(brokers)
    });
    let future_tolerance_ms = i64::try_from(args.future_tolerance.as_millis()).unwrap_or(i64::MAX);
    let source: Box<dyn Source> = match (&args.drill, &kafka, &args.input) {
        // drill (issue 13): the capture, replayed.
        (Some(d), _, _) => Box::new(d.source(future_tolerance_ms)?),
        (None, Some(cfg), _) => {
            let skew_ms = i64::try_from(args.skew_allowance.as_millis()).unwrap_or(i64::MAX);
            let source = KafkaSource::open(cfg)?
                .with_future_tolerance(future_tolerance_ms)
                .with_skew_allowance(skew_ms);
            Box::new(if args.stop_when_caught_up {
                source.stop_when_caught_up()
            } else {
                source
            })
        }
        (None, None, Some(dir)) => {
            Box::new(JsonLinesDir::open(dir)?.with_future_tolerance(future_tolerance_ms))
        }
        (None, None, None) => Box::new(EmbeddedSource::new(
            scenario::ScenarioConfig {
                seed: args.seed,
                events: None,
                start_ms: jiff::Timestamp::now().as_millisecond(),
                events_per_sec: args.rate.max(1),
                // An endless stream: its ground truth would grow without bound.
                track_truth: false,
                ..scenario::ScenarioConfig::default()
            },
            ingest::embedded::sped_up_clock(args.speed.max(1)),
        )),
    };
    // --- drill (issue 13): a capture of what is handed on ---
    let mut source: Box<dyn Source> = match &args.capture_out {
        Some(path) => {
            let what = match (&args.kafka, &args.input) {
                (Some(b), _) => format!("kafka {b} prefix {}", args.topic_prefix),
                (None, Some(dir)) => format!("directory {}", dir.display()),
                (None, None) => format!("embedded scenario, seed {}", args.seed),
            };
            Box::new(crate::drill::capture::Recorder::create(
                source,
                path,
                args.epoch_ms,
                what,
            )?)
        }
        None => source,
    };
    // --- end drill ---
    let dead: Box<dyn DeadLetterSink> = match (&kafka, &args.deadletters_out) {
        (Some(cfg), _) => Box::new(KafkaDeadLetters::new(cfg)?),
        (None, Some(path)) => Box::new(
            JsonLinesDeadLetters::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        (None, None) => Box::new(MemoryDeadLetters::with_limit(0)),
    };
    let alerts_topic = kafka.as_ref().map(KafkaAlerts::new).transpose()?;
    let subscriptions = args
        .subscriptions
        .as_ref()
        .map(|path| {
            delivery::Subscriptions::load(path)
                .with_context(|| format!("cannot load the subscriptions {}", path.display()))
        })
        .transpose()?;
    let outbox = match &subscriptions {
        Some(subs) => {
            Some(
                delivery::Outbox::open(
                    &args.outbox,
                    subs.clone(),
                    delivery::OutboxConfig {
                        // drill (issue 13): every webhook names the drill.
                        drill: args.drill.as_ref().map(|d| d.name.clone()),
                        ..delivery::OutboxConfig::default()
                    },
                )
                .with_context(|| format!("cannot open the outbox {}", args.outbox.display()))?,
            )
        }
        None => None,
    };
    let (stop_delivery, delivery_shutdown) = tokio::sync::watch::channel(false);
    if let Some(outbox) = &outbox {
        let outbox = outbox.clone();
        supervisor.spawn("delivery", Role::Service, move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("delivery-worker")
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let workers = outbox.spawn(delivery_shutdown);
                workers.join_all().await;
            });
            Ok(())
        })?;
    }
    // Logical times before this are durable downstream: offsets below them may be committed.
    let durable = Arc::new(AtomicU64::new(0));
    let alerts_out = args
        .alerts_out
        .as_deref()
        .map(|path| json_lines("the alerts file", path))
        .transpose()?;

    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..workers {
        let (tx, rx) = crossbeam_channel::bounded(FEED_CAPACITY);
        senders.push(tx);
        receivers.push(rx);
    }
    let (out_tx, out_rx) = crossbeam_channel::bounded::<Output>(OUTPUT_CAPACITY);

    let mut roster = load_roster(args.roster.as_deref())?;
    // drill (issue 13): outage injects are roster overrides.
    if let Some(d) = &args.drill {
        roster = d.roster(roster)?;
    }
    // --- desk (issue 11): the API, its action input, the terminal when there is one ---
    let mut desk = crate::desk::start::DeskRun::start(crate::desk::start::DeskOptions {
        addr: args.desk_addr,
        officers: &args.officers,
        headless: args.headless,
        token_file: args.token_file.as_deref(),
        topic_prefix: &args.topic_prefix,
        roster: roster.as_ref(),
        // drill (issue 13): the drill's desk actions stay in the process (its source is
        // the capture, not the actions topic).
        kafka: kafka.as_ref().filter(|_| args.drill.is_none()),
        metrics: &metrics,
    })?;
    if let Some(d) = desk.as_mut() {
        source = d.wrap(source);
    }
    // --- end desk ---
    let embedded = args.kafka.is_none() && args.input.is_none() && args.drill.is_none();
    let window = |given: Option<Duration>, live: u64, embedded_default: u64| {
        let d = given.unwrap_or(Duration::from_secs(if embedded {
            embedded_default
        } else {
            live
        }));
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    };
    let tiers = TierConfig {
        evidence_ms: window(args.evidence_window, 3_600, 600),
        retention_ms: window(args.retention, 30 * 86_400, 6 * 3_600),
    };
    let mut config = dataflow::runtime::Config::new(tiers);
    config.grace_ms = window(args.grace, 7 * 86_400, 3_600);
    config.indicator_max_age_ms =
        u64::try_from(args.indicator_max_age.as_millis()).unwrap_or(u64::MAX);
    config.roster = roster;
    config.drill = args.drill.is_some();
    if let Some((path, entries)) = load_warning_lists(args.warning_lists.as_deref())? {
        let (reload_tx, reload_rx) = crossbeam_channel::unbounded();
        supervisor.spawn(
            "warning-lists",
            Role::Service,
            watch_warning_lists(path, reload_tx, Arc::clone(&stop)),
        )?;
        config.warning_lists = entries;
        config.warning_reloads = Some(reload_rx);
    }
    config.stop = Arc::clone(&abort);
    for (name, server) in crate::metrics_http::take_servers() {
        supervisor.watch(&name, Role::Service, server);
    }

    let ingest_stats = hooks.stats.clone().unwrap_or_default();
    {
        let stats = Arc::clone(&ingest_stats);
        let stop = Arc::clone(&stop);
        let config = IngestConfig {
            max_record_bytes: args.max_record_bytes,
            topic_prefix: args.topic_prefix.clone(),
            future_tolerance_ms,
            dedup_window_ms: window(args.evidence_window, 3_600, 600),
            ..IngestConfig::default()
        };
        let ingest_metrics = metrics.clone();
        // Events are made into what the workers keep here, on the ingest thread.
        let router = Router::with_prepare(senders, args.epoch_ms, dataflow::history::EventIn::of);
        let durable = Arc::clone(&durable);
        let latency_probe = hooks.latency.clone();
        let abort = Arc::clone(&abort);
        supervisor.spawn("ingest", Role::Stage, move || {
            let mut ingestor = Ingestor::new(config, router, DynSink(dead), stats)
                .with_durable_frontier(durable)
                .with_metrics(ingest_metrics);
            if let Some(probe) = latency_probe {
                ingestor = ingestor.with_latency_probe(probe);
            }
            ingestor.run(source.as_mut(), &stop)?;
            // Stopped by force: the last outputs will not come, so only what is already
            // durable is committed.
            ingestor.finish(source.as_mut(), FINISH_WAIT, &abort)?;
            Ok(())
        })?;
    }
    supervisor.spawn("dataflow", Role::Stage, move || {
        dataflow::runtime::run(receivers, config, out_tx).map_err(BoxError::from)
    })?;

    let out_stats = Arc::new(OutputStats::default());
    {
        // The sinks, in the order they get each closed time.
        let mut output = OutputLoop::new(Arc::clone(&out_stats), Arc::clone(&durable));
        if let Some(path) = &args.routing_out {
            let (name, file) = json_lines("the routing file", path)?;
            output = output.sink(RoutingFile::new(name, file));
        }
        if let Some(cfg) = &kafka {
            output = output.sink(RejectedActions::new(
                Box::new(KafkaDeadLetters::new(cfg)?),
                format!("{}desk.actions", args.topic_prefix),
            ));
        }
        // desk (issue 11): one consistent closed time after another.
        if let Some(d) = &desk {
            output = output.sink(DeskSink(d.hub.clone()));
        }
        if let Some(probe) = &hooks.latency {
            output = output.sink(LatencySink::new(
                Arc::clone(probe),
                Arc::clone(&hooks.samples),
            ));
        }
        if let Some(topic) = alerts_topic {
            output = output.sink(AlertTopic(topic));
        }
        if let Some(outbox) = &outbox {
            // Durable before the offsets behind it are committed.
            match &args.drill {
                // drill (issue 13): what happened before the period was delivered live.
                Some(d) => output = output.sink(d.within_period(OutboxSink::new(outbox.clone()))),
                None => output = output.sink(OutboxSink::new(outbox.clone())),
            }
        }
        // drill (issue 13): the deliveries the drill's alert changes would cause.
        if let (Some(d), Some(subs)) = (&args.drill, subscriptions) {
            let intents =
                crate::drill::DeliveryIntents::create(subs, &d.dir.join("deliveries.jsonl"))?;
            output = output.sink(d.within_period(intents));
        }
        if let Some((name, file)) = alerts_out {
            output = output.sink(AlertsFile::new(name, file));
        }
        supervisor.spawn("alert-output", Role::Stage, move || {
            output.run(&out_rx).map_err(BoxError::from)
        })?;
    }

    let started = Instant::now();
    let mut last_events = 0;
    let mut last_tick = Instant::now();
    let summary = |elapsed: f64, rate: f64| {
        let i = &ingest_stats;
        let o = &out_stats;
        let rehydrated = i.rehydrated_ms.load(Ordering::Relaxed);
        let status = if rehydrated == u64::MAX {
            " REHYDRATING |"
        } else {
            ""
        };
        // Every worker holds every current indicator: the most any holds is the count.
        let (raw, summaries, held) = o.history.lock().map_or((0, 0, 0), |h| {
            h.iter().fold((0, 0, 0), |(r, s, i), x| {
                (
                    r + x.sizes.raw_events,
                    s + x.sizes.summaries,
                    i.max(x.sizes.indicators),
                )
            })
        });
        println!(
            "[{elapsed:6.1}s]{status} events/s {rate:>9.0} | events {:>9} | indicators {:>6} ({held} held, {} bounded by max age) | matches {:>7} (suppressed {}) | open alerts {:>5} ({} retroactive, {} expired) | history {raw} raw, {summaries} summaries | dead letters {:>5}{}",
            i.events.load(Ordering::Relaxed),
            i.indicators.load(Ordering::Relaxed),
            o.age_bounded.load(Ordering::Relaxed),
            o.matches.load(Ordering::Relaxed),
            o.suppressed.load(Ordering::Relaxed),
            o.open_alerts.load(Ordering::Relaxed),
            o.retroactive_alerts.load(Ordering::Relaxed),
            o.expired_alerts.load(Ordering::Relaxed),
            i.dead_letters.load(Ordering::Relaxed),
            match o.on_duty.lock().map(|d| d.clone()) {
                Ok(d) if !d.is_empty() => format!(
                    " | on duty {d} | rejected actions {}",
                    o.rejected_actions.load(Ordering::Relaxed)
                ),
                _ => String::new(),
            },
        );
    };
    // --- desk (issue 11) ---
    if let Some(d) = &desk {
        d.open_terminal(Path::new("fusion-run.log"), &stop)?;
    }
    // --- end desk ---
    supervisor.run(|| {
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
            stop.store(true, Ordering::SeqCst);
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            let events = ingest_stats.events.load(Ordering::Relaxed);
            let rate = (events - last_events) as f64 / last_tick.elapsed().as_secs_f64();
            last_events = events;
            last_tick = Instant::now();
            // desk (issue 11): health for the desk; no progress lines over its terminal.
            if let Some(d) = &desk {
                d.report(&ingest_stats, rate);
            }
            if desk.as_ref().is_none_or(|d| !d.terminal_open()) && !hooks.quiet {
                summary(started.elapsed().as_secs_f64(), rate);
            }
        }
    })?;
    if let Some(outbox) = &outbox {
        let grace = Instant::now();
        let signals = supervisor.signals();
        while outbox.pending().unwrap_or(0) > 0
            && grace.elapsed() < DELIVERY_GRACE
            && signals.load(Ordering::SeqCst) < 2
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = stop_delivery.send(true);
        supervisor.join("delivery", DELIVERY_STOP)?;
        println!(
            "delivery: {} message(s) still pending in {}",
            outbox.pending().unwrap_or(0),
            args.outbox.display()
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let events = ingest_stats.events.load(Ordering::Relaxed);
    summary(elapsed, events as f64 / elapsed.max(1e-9));
    let rehydrated = ingest_stats.rehydrated_ms.load(Ordering::Relaxed);
    if args.kafka.is_some() && rehydrated != u64::MAX {
        println!(
            "rehydration from retained history took {:.2}s",
            rehydrated as f64 / 1000.0
        );
    }
    println!(
        "done: {events} events in {elapsed:.1}s ({:.0} events/s), {} alert changes",
        events as f64 / elapsed.max(1e-9),
        out_stats.alert_changes.load(Ordering::Relaxed)
    );
    Ok(())
}

/// A buffered JSON-lines file created at `path`, with its name for messages (`what` and the path).
fn json_lines(what: &str, path: &Path) -> anyhow::Result<(String, Box<dyn Write + Send>)> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok((
        format!("{what} {}", path.display()),
        Box::new(BufWriter::new(file)),
    ))
}

/// desk (issue 11): the desk's hub as a sink of closed times.
struct DeskSink(crate::desk::DeskHub);

impl ClosedSink for DeskSink {
    fn name(&self) -> String {
        "the desk".into()
    }

    fn closed(&mut self, closed: &Closed<'_>) -> Result<(), SinkError> {
        self.0.closed(closed.bound, closed.routing, closed.alerts);
        Ok(())
    }
}

/// A boxed sink as a sink.
struct DynSink(Box<dyn DeadLetterSink>);

impl DeadLetterSink for DynSink {
    fn send(&mut self, dead: schemas::DeadLetter) -> std::io::Result<()> {
        self.0.send(dead)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
