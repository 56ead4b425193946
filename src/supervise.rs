//! Supervision of the threads of `fusion run`.
//!
//! Every thread of a run is a named component. A *stage* (ingest, dataflow, alert output)
//! ends when the input ends; a *service* (metrics endpoint, desk API, delivery) runs as
//! long as the run. [`Supervisor::run`] watches them all:
//!
//! - A component that fails (returns an error or panics), and a service that ends before
//!   the run is told to stop, fail the run: the stop flag ends ingestion, the abort flag makes the dataflow workers drop the
//!   dataflow between two steps, and the run ends with [`RunError::Failed`] naming the
//!   component. That commits nothing new: the ingestor commits source offsets only before
//!   the durable frontier the output side reports, and a failed output no longer moves it.
//! - The first signal (SIGINT, SIGTERM: [`Supervisor::signals`]) sets the stop flag:
//!   ingestion ends and the stages drain (the dataflow finishes the input it has, the output
//!   writes it, the ingestor commits it). If they have not ended [`Timing::drain`] after it,
//!   or at a second signal, the abort flag is set and the run ends with
//!   [`RunError::Aborted`] naming the stages that were still running.
//! - Components that have not ended [`Timing::abort_grace`] after the abort flag was set are
//!   left behind: the run ends with its error listing them, and the process exits without
//!   waiting for them (what they had not made durable is read again on restart).
//!
//! Errors that follow the first failure or an abort (a stage whose input or output went
//! away) are consequences and are only logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Any error a component ends with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a component's thread returns.
pub type ComponentResult = Result<(), BoxError>;

/// How a component is expected to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Ends when the input ends (ingest ends last: it commits what the output made durable).
    Stage,
    /// Runs as long as the run; ending before the run is told to stop is a failure.
    Service,
}

/// How long shutdown waits.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// After the first signal, how long the stages may drain before they are aborted.
    pub drain: Duration,
    /// After the abort, how long components get to end before they are left behind.
    pub abort_grace: Duration,
    /// How often components are checked (and the tick called).
    pub poll: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            drain: Duration::from_secs(5),
            abort_grace: Duration::from_secs(3),
            poll: Duration::from_millis(50),
        }
    }
}

/// Why a run ended early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A component failed; the run was stopped.
    #[error("{component} failed: {source}{}", left_behind(.not_stopped))]
    Failed {
        /// The component.
        component: String,
        /// Its error, or its panic's message.
        #[source]
        source: BoxError,
        /// Components that had not ended when the process gave up on them.
        not_stopped: Vec<String>,
    },
    /// A stage or service ended when it should not have.
    #[error("{component} stopped unexpectedly ({why}); the run was stopped{}", left_behind(.not_stopped))]
    Unexpected {
        /// The component.
        component: String,
        /// What was wrong about its end.
        why: String,
        /// Components that had not ended when the process gave up on them.
        not_stopped: Vec<String>,
    },
    /// A signal asked the run to stop and the stages did not drain in time.
    #[error(
        "stopped by force {}: {} had not finished (outputs not yet written are produced again on restart; their offsets were not committed){}",
        match .second_signal { true => "at a second signal", false => "after the drain deadline" },
        .running.join(", "),
        left_behind(.not_stopped)
    )]
    Aborted {
        /// Whether a second signal forced it (else the drain deadline).
        second_signal: bool,
        /// The stages still running when the abort was decided.
        running: Vec<String>,
        /// Components that had not ended when the process gave up on them.
        not_stopped: Vec<String>,
    },
    /// A component to wait for is not supervised.
    #[error("no component named {0} is supervised")]
    Unknown(String),
}

fn left_behind(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(
            "; {} did not stop and {} left behind",
            names.join(", "),
            if names.len() == 1 { "was" } else { "were" }
        )
    }
}

impl RunError {
    fn not_stopped(&mut self) -> Option<&mut Vec<String>> {
        match self {
            Self::Failed { not_stopped, .. }
            | Self::Unexpected { not_stopped, .. }
            | Self::Aborted { not_stopped, .. } => Some(not_stopped),
            Self::Unknown(_) => None,
        }
    }
}

struct Component {
    name: String,
    role: Role,
    handle: Option<JoinHandle<ComponentResult>>,
}

impl Component {
    fn running(&self) -> bool {
        self.handle.is_some()
    }
}

/// Records, in the order they fail, the components spawned by [`Supervisor::spawn`] that
/// fail: of several failures seen at once, the first is the cause, the others its consequences.
struct FailureOrder {
    name: String,
    order: Arc<std::sync::Mutex<Vec<String>>>,
    /// Still in the component's work: dropped so, it panicked.
    working: bool,
}

impl FailureOrder {
    fn record(&self) {
        if let Ok(mut order) = self.order.lock() {
            order.push(self.name.clone());
        }
    }
}

impl Drop for FailureOrder {
    fn drop(&mut self) {
        if self.working {
            self.record();
        }
    }
}

/// Watches the components of a run (see the module documentation).
pub struct Supervisor {
    components: Vec<Component>,
    /// The components that failed, in the order they did.
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
    signals: Arc<AtomicUsize>,
    timing: Timing,
    /// The first failure, or the abort decided after signals.
    error: Option<RunError>,
    aborted_at: Option<Instant>,
    first_signal_at: Option<Instant>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.components.iter().map(|c| c.name.as_str()).collect();
        f.debug_struct("Supervisor")
            .field("components", &names)
            .finish_non_exhaustive()
    }
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new(Timing::default())
    }
}

impl Supervisor {
    /// A supervisor of no components yet.
    pub fn new(timing: Timing) -> Self {
        Self {
            components: Vec::new(),
            failed: Arc::default(),
            stop: Arc::default(),
            abort: Arc::default(),
            signals: Arc::default(),
            timing,
            error: None,
            aborted_at: None,
            first_signal_at: None,
        }
    }

    /// Set to end the run gracefully: ingestion stops and the stages drain.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Set when the run is stopped by force: the dataflow drops what it was doing.
    pub fn abort_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.abort)
    }

    /// Counts the signals received (a signal handler adds one per signal).
    pub fn signals(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.signals)
    }

    /// Spawns `work` on a thread named `name` and watches it.
    pub fn spawn<F>(&mut self, name: &str, role: Role, work: F) -> std::io::Result<()>
    where
        F: FnOnce() -> ComponentResult + Send + 'static,
    {
        let mut failed = FailureOrder {
            name: name.to_string(),
            order: Arc::clone(&self.failed),
            working: true,
        };
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                // A panic in `work` records in `failed`'s drop.
                let result = work();
                failed.working = false;
                if result.is_err() {
                    failed.record();
                }
                result
            })?;
        self.watch(name, role, handle);
        Ok(())
    }

    /// Watches a thread started elsewhere.
    pub fn watch(&mut self, name: &str, role: Role, handle: JoinHandle<ComponentResult>) {
        self.components.push(Component {
            name: name.to_string(),
            role,
            handle: Some(handle),
        });
    }

    /// Watches the components until every stage has ended, calling `tick` at each poll;
    /// `Ok` when they all ended normally. Services keep running.
    pub fn run(&mut self, mut tick: impl FnMut()) -> Result<(), RunError> {
        loop {
            self.reap();
            self.check_signals();
            if !self.stages_running() {
                break;
            }
            if let Some(at) = self.aborted_at
                && at.elapsed() >= self.timing.abort_grace
            {
                break;
            }
            tick();
            std::thread::sleep(self.timing.poll);
        }
        self.outcome()
    }

    /// Waits up to `within` for the component `name` (told to end by its owner) to end;
    /// `Ok` if it ended normally.
    pub fn join(&mut self, name: &str, within: Duration) -> Result<(), RunError> {
        if !self.components.iter().any(|c| c.name == name) {
            return Err(RunError::Unknown(name.to_string()));
        }
        let started = Instant::now();
        let ended = |s: &Self| {
            s.components
                .iter()
                .filter(|c| c.name == name)
                .all(|c| c.handle.as_ref().is_none_or(JoinHandle::is_finished))
        };
        while !ended(self) && started.elapsed() < within && self.error.is_none() {
            self.check_signals();
            std::thread::sleep(self.timing.poll);
        }
        // The one being joined may end now: it is no longer expected to run.
        for c in self.components.iter_mut().filter(|c| c.name == name) {
            c.role = Role::Stage;
        }
        self.reap();
        if self.error.is_none()
            && let Some(c) = self
                .components
                .iter()
                .find(|c| c.name == name && c.running())
        {
            self.error = Some(RunError::Unexpected {
                component: c.name.clone(),
                why: format!("it did not end within {within:?} of being told to"),
                not_stopped: Vec::new(),
            });
            self.stop.store(true, Ordering::SeqCst);
            self.abort.store(true, Ordering::SeqCst);
            self.aborted_at.get_or_insert_with(Instant::now);
        }
        self.outcome()
    }

    /// The run's error, if any, with the components left behind named.
    fn outcome(&mut self) -> Result<(), RunError> {
        let running: Vec<String> = self
            .components
            .iter()
            .filter(|c| c.running() && (c.role == Role::Stage || self.aborted_at.is_some()))
            .map(|c| c.name.clone())
            .collect();
        match self.error.take() {
            None => Ok(()),
            Some(mut e) => {
                if let Some(list) = e.not_stopped() {
                    *list = running;
                }
                Err(e)
            }
        }
    }

    fn stages_running(&self) -> bool {
        self.components
            .iter()
            .any(|c| c.role == Role::Stage && c.running())
    }

    /// Joins every component that has ended and judges how it ended.
    fn reap(&mut self) {
        let mut problems = Vec::new();
        for i in 0..self.components.len() {
            let finished = self.components[i]
                .handle
                .as_ref()
                .is_some_and(JoinHandle::is_finished);
            if !finished {
                continue;
            }
            let Some(handle) = self.components[i].handle.take() else {
                continue;
            };
            let name = self.components[i].name.clone();
            let problem = match handle.join() {
                Err(panic) => Some(RunError::Failed {
                    component: name.clone(),
                    source: format!("panicked: {}", panic_message(&*panic)).into(),
                    not_stopped: Vec::new(),
                }),
                Ok(Err(source)) => Some(RunError::Failed {
                    component: name.clone(),
                    source,
                    not_stopped: Vec::new(),
                }),
                Ok(Ok(())) => match self.components[i].role {
                    Role::Service if !self.stop.load(Ordering::SeqCst) => {
                        Some(RunError::Unexpected {
                            component: name.clone(),
                            why: "it ended while the run was going on".into(),
                            not_stopped: Vec::new(),
                        })
                    }
                    Role::Service | Role::Stage => None,
                },
            };
            match problem {
                Some(e) => problems.push((name, e)),
                None => tracing::debug!(component = %name, "ended"),
            }
        }
        // The component that failed first is the cause.
        let order = self.failed.lock().map(|o| o.clone()).unwrap_or_default();
        problems
            .sort_by_key(|(name, _)| order.iter().position(|n| n == name).unwrap_or(usize::MAX));
        for (name, e) in problems {
            if self.error.is_none() && self.aborted_at.is_none() {
                tracing::error!(component = %name, error = %e, "a component failed; stopping the run");
                self.error = Some(e);
                self.stop.store(true, Ordering::SeqCst);
                self.abort.store(true, Ordering::SeqCst);
                self.aborted_at = Some(Instant::now());
            } else {
                tracing::debug!(component = %name, error = %e, "a component ended after the run was stopped");
            }
        }
    }

    /// Stops the run at the first signal and aborts it at the second or after the drain.
    fn check_signals(&mut self) {
        let signals = self.signals.load(Ordering::SeqCst);
        if signals == 0 {
            return;
        }
        let first = *self.first_signal_at.get_or_insert_with(|| {
            tracing::info!("stopping: ingestion ends, then what was read is finished and written (a second signal stops at once)");
            Instant::now()
        });
        self.stop.store(true, Ordering::SeqCst);
        let second = signals >= 2;
        if self.aborted_at.is_none() && (second || first.elapsed() >= self.timing.drain) {
            let running: Vec<String> = self
                .components
                .iter()
                .filter(|c| c.role == Role::Stage && c.running())
                .map(|c| c.name.clone())
                .collect();
            if running.is_empty() {
                return;
            }
            tracing::warn!(running = %running.join(", "), "stopping by force");
            self.error = Some(RunError::Aborted {
                second_signal: second,
                running,
                not_stopped: Vec::new(),
            });
            self.abort.store(true, Ordering::SeqCst);
            self.aborted_at = Some(Instant::now());
        }
    }
}

/// The message of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

    use super::*;

    fn quick() -> Timing {
        Timing {
            drain: Duration::from_millis(300),
            abort_grace: Duration::from_millis(300),
            poll: Duration::from_millis(5),
        }
    }

    /// A stage that ends when `flag` is set.
    fn until(flag: &Arc<AtomicBool>) -> impl FnOnce() -> ComponentResult + Send + 'static {
        let flag = Arc::clone(flag);
        move || {
            while !flag.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(())
        }
    }

    /// A stage that ignores every flag for `d`.
    fn busy_for(d: Duration) -> impl FnOnce() -> ComponentResult + Send + 'static {
        move || {
            std::thread::sleep(d);
            Ok(())
        }
    }

    #[test]
    fn stages_that_end_in_order_end_the_run_normally() {
        let mut s = Supervisor::new(quick());
        let input_done = Arc::new(AtomicBool::new(false));
        s.spawn("ingest", Role::Stage, until(&input_done)).unwrap();
        s.spawn("output", Role::Stage, until(&input_done)).unwrap();
        s.spawn("metrics", Role::Service, until(&s.stop_flag()))
            .unwrap();
        let mut ticks = 0;
        input_done.store(true, Ordering::SeqCst);
        s.run(|| ticks += 1).unwrap();
        assert!(
            !s.stop_flag().load(Ordering::SeqCst),
            "nothing asked to stop"
        );
    }

    #[test]
    fn a_failing_output_stops_ingestion_and_is_named() {
        let mut s = Supervisor::new(quick());
        let stop = s.stop_flag();
        let abort = s.abort_flag();
        s.spawn("ingest", Role::Stage, until(&stop)).unwrap();
        s.spawn("dataflow", Role::Stage, until(&abort)).unwrap();
        s.spawn("alert output", Role::Stage, || {
            Err("cannot write alerts.jsonl: No space left on device".into())
        })
        .unwrap();
        let started = Instant::now();
        let e = s.run(|| {}).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(stop.load(Ordering::SeqCst) && abort.load(Ordering::SeqCst));
        let text = e.to_string();
        assert!(
            text.starts_with("alert output failed: cannot write alerts.jsonl"),
            "{text}"
        );
        assert!(!text.contains("left behind"), "everything stopped: {text}");
    }

    #[test]
    fn of_failures_seen_at_once_the_first_is_the_cause() {
        let mut s = Supervisor::new(Timing {
            // Both have failed by the first look.
            poll: Duration::from_millis(300),
            ..quick()
        });
        let output_failed = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&output_failed);
        s.spawn("ingest", Role::Stage, move || {
            while !seen.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err("the dataflow workers stopped accepting input".into())
        })
        .unwrap();
        s.spawn("alert-output", Role::Stage, move || {
            output_failed.store(true, Ordering::SeqCst);
            Err("disk full".into())
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let text = s.run(|| {}).unwrap_err().to_string();
        assert_eq!(text, "alert-output failed: disk full");
    }

    #[test]
    fn a_panic_is_a_failure_with_its_message() {
        let mut s = Supervisor::new(quick());
        let stop = s.stop_flag();
        s.spawn("ingest", Role::Stage, until(&stop)).unwrap();
        s.spawn("dataflow", Role::Stage, || panic!("worker 1 lost"))
            .unwrap();
        let text = s.run(|| {}).unwrap_err().to_string();
        assert_eq!(text, "dataflow failed: panicked: worker 1 lost");
    }

    #[test]
    fn a_service_that_ends_during_the_run_fails_it() {
        let mut s = Supervisor::new(quick());
        let stop = s.stop_flag();
        s.spawn("ingest", Role::Stage, until(&stop)).unwrap();
        s.spawn("metrics", Role::Service, || Err("address in use".into()))
            .unwrap();
        let text = s.run(|| {}).unwrap_err().to_string();
        assert_eq!(text, "metrics failed: address in use");
    }

    #[test]
    fn a_signal_drains_the_stages_and_ends_normally() {
        let mut s = Supervisor::new(quick());
        let stop = s.stop_flag();
        s.spawn("ingest", Role::Stage, until(&stop)).unwrap();
        s.signals().fetch_add(1, Ordering::SeqCst);
        s.run(|| {}).unwrap();
        assert!(!s.abort_flag().load(Ordering::SeqCst));
    }

    #[test]
    fn a_stage_that_does_not_drain_is_aborted_after_the_deadline_and_named() {
        let mut s = Supervisor::new(quick());
        let stop = s.stop_flag();
        s.spawn("ingest", Role::Stage, until(&stop)).unwrap();
        s.spawn("dataflow", Role::Stage, until(&s.abort_flag()))
            .unwrap();
        s.signals().fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        let text = s.run(|| {}).unwrap_err().to_string();
        assert!(started.elapsed() >= quick().drain);
        assert!(
            text.starts_with(
                "stopped by force after the drain deadline: dataflow had not finished"
            ),
            "{text}"
        );
        assert!(!text.contains("left behind"), "{text}");
    }

    #[test]
    fn a_second_signal_aborts_at_once_and_a_stage_that_ignores_it_is_left_behind() {
        let mut s = Supervisor::new(Timing {
            drain: Duration::from_secs(60),
            ..quick()
        });
        s.spawn("dataflow", Role::Stage, busy_for(Duration::from_secs(30)))
            .unwrap();
        s.signals().fetch_add(2, Ordering::SeqCst);
        let started = Instant::now();
        let text = s.run(|| {}).unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            text.starts_with("stopped by force at a second signal: dataflow had not finished"),
            "{text}"
        );
        assert!(
            text.ends_with("; dataflow did not stop and was left behind"),
            "{text}"
        );
    }

    #[test]
    fn a_service_told_to_end_is_joined_and_one_that_does_not_end_is_named() {
        let mut s = Supervisor::new(quick());
        let done = Arc::new(AtomicBool::new(true));
        s.spawn("delivery", Role::Service, until(&done)).unwrap();
        s.join("delivery", Duration::from_secs(2)).unwrap();
        s.spawn("outbox", Role::Service, busy_for(Duration::from_secs(30)))
            .unwrap();
        let text = s
            .join("outbox", Duration::from_millis(100))
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("outbox stopped unexpectedly (it did not end within"),
            "{text}"
        );
    }
}
