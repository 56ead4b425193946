//! How `fusion run` starts the desk: the hub the output loop feeds, the API, the action
//! input, and — when `fusion run` has a terminal of its own — the desk in it.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use crossbeam_channel::Receiver;
use dataflow::roster::{Roster, RosterSpec};
use ingest::kafka::KafkaConfig;
use ingest::metrics::KafkaMetrics;
use ingest::{IngestStats, Source};
use schemas::desk::PipelineHealth;
use schemas::{DeskAction, Topic};

use super::actions::{ActionSink, ChannelSink, KafkaSink};
use super::api::ApiState;
use super::metrics::DeskMetrics;
use super::officers::Officers;
use super::store::Limits;
use super::view::Centers;
use super::{DeskConfig, DeskHub, VERDICT_WAIT};

/// What `fusion run` was asked for.
#[derive(Debug)]
pub struct DeskOptions<'a> {
    /// `--desk-addr`.
    pub addr: Option<SocketAddr>,
    /// `--officers`.
    pub officers: &'a Path,
    /// `--headless`: never open the desk in this terminal.
    pub headless: bool,
    /// `--token-file`: the officer working the desk in this terminal.
    pub token_file: Option<&'a Path>,
    /// `--topic-prefix` (a `drill.<name>.` prefix makes a drill).
    pub topic_prefix: &'a str,
    /// The roster in force, if any.
    pub roster: Option<&'a RosterSpec>,
    /// With `--kafka`: actions go to its desk-actions topic.
    pub kafka: Option<&'a KafkaConfig>,
    /// The process's metrics (the desk registers its own beside them).
    pub metrics: &'a KafkaMetrics,
}

/// The desk of one `fusion run`.
pub struct DeskRun {
    /// The hub the output loop feeds.
    pub hub: DeskHub,
    /// The API's URL.
    pub url: String,
    actions: Option<Receiver<DeskAction>>,
    terminal: Option<String>,
    terminal_open: Arc<AtomicBool>,
}

impl std::fmt::Debug for DeskRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeskRun")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for DeskRun {
    fn drop(&mut self) {
        // A run ending with the desk still open (an error) gives the terminal back.
        if self.terminal_open() {
            ops_tui::terminal::restore();
        }
    }
}

impl DeskRun {
    /// Starts the desk when one is wanted (`--desk-addr`, or a terminal without
    /// `--headless`); none otherwise.
    pub fn start(o: DeskOptions<'_>) -> anyhow::Result<Option<Self>> {
        let interactive = !o.headless && std::io::stdout().is_terminal();
        let addr = match (o.addr, interactive) {
            (Some(a), _) => a,
            (None, true) => SocketAddr::from(([127, 0, 0, 1], 0)),
            (None, false) => return Ok(None),
        };
        let mut officers = Officers::open(o.officers)?;
        let compiled = o.roster.map(Roster::compile).transpose()?;
        let zones: Vec<(String, String)> = o
            .roster
            .map(|r| {
                r.centers
                    .iter()
                    .map(|c| (c.name.clone(), c.time_zone.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let drill = super::drill_from_prefix(o.topic_prefix);
        let centers = Centers::new(&zones, &officers.current().centers, drill.is_some());
        let hub = DeskHub::new(DeskConfig {
            centers,
            policy: super::pseudonym_policy(),
            drill,
            limits: Limits::default(),
        });
        let mut terminal = None;
        if interactive {
            terminal = Some(match o.token_file {
                Some(path) => super::cli::read_token(path)?,
                None => {
                    // The console officer: a token that lives only in this process, for the
                    // center on duty now.
                    let center = compiled
                        .as_ref()
                        .and_then(|r| {
                            r.on_duty(jiff::Timestamp::now().as_millisecond())
                                .map(|i| r.center_name(i).to_string())
                        })
                        .unwrap_or_default();
                    let (with, token) = officers.with_session_officer("console", &center);
                    officers = with;
                    tracing::info!(%center, "the desk opens here for officer console of {center}; give --token-file to work as yourself");
                    token
                }
            });
        }
        let (sink, actions): (Arc<dyn ActionSink>, _) = match o.kafka {
            Some(cfg) => {
                let producer = ingest::kafka::TopicProducer::counted(cfg, Topic::DeskActions)
                    .context("cannot open the desk-actions producer")?;
                (Arc::new(KafkaSink(producer)), None)
            }
            None => {
                let (tx, rx) = crossbeam_channel::unbounded();
                (Arc::new(ChannelSink(tx)), Some(rx))
            }
        };
        let render = {
            let m = o.metrics.clone();
            Arc::new(move || m.render()) as Arc<dyn Fn() -> String + Send + Sync>
        };
        let state = ApiState {
            hub: hub.clone(),
            officers: Arc::new(officers),
            sink,
            metrics: DeskMetrics::new(o.metrics.registry()),
            render_metrics: render,
            verdict_wait: VERDICT_WAIT,
        };
        let bound = super::serve(addr, state)?;
        Ok(Some(Self {
            hub,
            url: format!("http://{bound}"),
            actions,
            terminal,
            terminal_open: Arc::new(AtomicBool::new(false)),
        }))
    }

    /// `source` with the desk's in-process actions merged in (without Kafka), and every
    /// desk action reported to the hub as it enters the dataflow.
    pub fn wrap(&mut self, source: Box<dyn Source>) -> Box<dyn Source> {
        let hub = self.hub.clone();
        Box::new(ingest::desk_actions::DeskActionSource::new(
            source,
            self.actions.take(),
            Box::new(move |action, time, bound| hub.routed(action, time, bound)),
        ))
    }

    /// Reports the pipeline's health (once a second).
    pub fn report(&self, stats: &IngestStats, events_per_sec: f64) {
        let rehydrated = stats.rehydrated_ms.load(Ordering::Relaxed);
        let rehydrating = rehydrated == u64::MAX;
        self.hub.set_health(PipelineHealth {
            events_per_sec,
            dead_letters: stats.dead_letters.load(Ordering::Relaxed),
            rehydrating,
            rehydration_ms: (!rehydrating).then_some(rehydrated),
            ..PipelineHealth::default()
        });
        self.hub.set_ready(!rehydrating);
    }

    /// Whether the desk occupies this terminal (progress lines must not draw over it).
    pub fn terminal_open(&self) -> bool {
        self.terminal_open.load(Ordering::Relaxed)
    }

    /// Opens the desk in this terminal when it has one: logs go to `log` meanwhile, and
    /// `stop` is set when the officer quits (the run then ends).
    pub fn open_terminal(&self, log: &Path, stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
        let Some(token) = self.terminal.clone() else {
            return Ok(());
        };
        eprintln!(
            "the desk opens in this terminal (q quits and stops the run); logs go to {}",
            log.display()
        );
        super::redirect_logs(log)?;
        let config = ops_tui::Config {
            url: self.url.clone(),
            token,
            latency_log: None,
        };
        let open = Arc::clone(&self.terminal_open);
        let stop = Arc::clone(stop);
        open.store(true, Ordering::Relaxed);
        std::thread::Builder::new()
            .name("desk-terminal".into())
            .spawn(move || {
                // However the terminal ends (a quit, an error, a panic), the run ends
                // with it and prints its lines again.
                let _closed = Closed { open, stop };
                if let Err(e) = ops_tui::run(config) {
                    tracing::warn!(error = %e, "the desk terminal failed");
                }
            })
            .context("cannot start the desk terminal")?;
        Ok(())
    }
}

/// Marks the desk's terminal closed and stops the run, when dropped.
struct Closed {
    open: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Drop for Closed {
    fn drop(&mut self) {
        self.open.store(false, Ordering::Relaxed);
        self.stop.store(true, Ordering::SeqCst);
    }
}
