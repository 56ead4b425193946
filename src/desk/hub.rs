//! The desk's shared state: a [`DeskStore`] fed by the output loop, and the change
//! notifications the API's streams and action requests wait on. Cheap to clone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use schemas::desk::PipelineHealth;
use schemas::routing::RoutingChange;
use schemas::{AlertChange, DeskAction};
use tokio::sync::{broadcast, watch};

use super::store::{ClosedEntry, DeskStore, Limits};
use super::view::{Centers, ViewContext};

/// How many closed times a slow stream may fall behind before it gets a snapshot instead.
const STREAM_BACKLOG: usize = 1024;

/// The desk's configuration.
#[derive(Debug, Clone)]
pub struct DeskConfig {
    /// The roster's centers with their egress settings.
    pub centers: Centers,
    /// The pseudonymisation policy of the egress rule.
    pub policy: schemas::sharing::Policy,
    /// The drill this instance runs, or none for live operations.
    pub drill: Option<String>,
    /// Bounds of the store.
    pub limits: Limits,
}

struct Inner {
    store: RwLock<DeskStore>,
    changes: broadcast::Sender<Arc<ClosedEntry>>,
    /// Bumped at every closed frontier: action requests wait on it for their verdict.
    frontier: watch::Sender<u64>,
    health: RwLock<PipelineHealth>,
    ready: AtomicBool,
    ctx: ViewContext,
    drill: Option<String>,
}

/// A handle on the desk's state.
#[derive(Clone)]
pub struct DeskHub(Arc<Inner>);

impl std::fmt::Debug for DeskHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeskHub").finish_non_exhaustive()
    }
}

impl DeskHub {
    /// An empty desk.
    pub fn new(config: DeskConfig) -> Self {
        let (changes, _) = broadcast::channel(STREAM_BACKLOG);
        let (frontier, _) = watch::channel(0);
        Self(Arc::new(Inner {
            store: RwLock::new(DeskStore::new(config.centers.len(), config.limits)),
            changes,
            frontier,
            health: RwLock::new(PipelineHealth::default()),
            ready: AtomicBool::new(false),
            ctx: ViewContext {
                centers: config.centers,
                policy: config.policy,
            },
            drill: config.drill,
        }))
    }

    /// The output loop closed every time before `frontier`: these are the routing and
    /// alert changes of those times (in time order). Called once per closed frontier, in order.
    pub fn closed(
        &self,
        frontier: u64,
        routing: &[(u64, Vec<RoutingChange>)],
        alerts: &[(u64, Vec<AlertChange>)],
    ) {
        let entries = match self.0.store.write() {
            Ok(mut store) => store.closed(frontier, routing, alerts),
            Err(_) => return,
        };
        for e in entries {
            // No stream listening is fine: they read the store when they connect.
            let _ = self.0.changes.send(e);
        }
        self.0.frontier.send_replace(frontier);
    }

    /// A desk action entered the dataflow at `time_ms` (no later than `bound_ms` on any worker).
    pub fn routed(&self, action: &DeskAction, time_ms: u64, bound_ms: u64) {
        if let Ok(mut store) = self.0.store.write() {
            store.routed(action.clone(), time_ms, bound_ms);
        }
    }

    /// An officer submitted `action` through this desk.
    pub fn submitted(&self, action: &DeskAction) {
        if let Ok(mut store) = self.0.store.write() {
            store.submitted(action.clone());
        }
    }

    /// The pipeline's health now.
    pub fn set_health(&self, health: PipelineHealth) {
        if let Ok(mut h) = self.0.health.write() {
            *h = health;
        }
    }

    /// Ready: rehydration is done.
    pub fn set_ready(&self, ready: bool) {
        self.0.ready.store(ready, Ordering::Release);
    }

    /// Whether rehydration is done.
    pub fn ready(&self) -> bool {
        self.0.ready.load(Ordering::Acquire)
    }

    /// The pipeline's health, with the desk's own figures.
    pub fn health(&self) -> PipelineHealth {
        let mut h = self.0.health.read().map(|h| h.clone()).unwrap_or_default();
        if let Ok(store) = self.0.store.read() {
            h.open_alerts = store.open_count();
            h.rejected_actions = store.rejected_total();
            if store.frontier() > 0 {
                let closed = store.frontier() - 1;
                h.closed_time =
                    Timestamp::from_millisecond(i64::try_from(closed).unwrap_or(i64::MAX)).ok();
                h.lag_ms = Some(
                    Timestamp::now().as_millisecond() - i64::try_from(closed).unwrap_or(i64::MAX),
                );
            }
        }
        h
    }

    /// Reads the store.
    pub fn read<R>(&self, f: impl FnOnce(&DeskStore) -> R) -> Option<R> {
        self.0.store.read().ok().map(|s| f(&s))
    }

    /// New ring entries as they are made.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ClosedEntry>> {
        self.0.changes.subscribe()
    }

    /// The closed frontier, as it moves.
    pub fn frontier(&self) -> watch::Receiver<u64> {
        self.0.frontier.subscribe()
    }

    /// The desk's logical now: the last closed time, or the wall clock before any.
    pub fn now(&self) -> Timestamp {
        let frontier = self.read(DeskStore::frontier).unwrap_or(0);
        if frontier == 0 {
            return Timestamp::now();
        }
        Timestamp::from_millisecond(i64::try_from(frontier - 1).unwrap_or(i64::MAX))
            .unwrap_or_else(|_| Timestamp::now())
    }

    /// Centers and policy.
    pub fn ctx(&self) -> &ViewContext {
        &self.0.ctx
    }

    /// The drill this instance runs.
    pub fn drill(&self) -> Option<&str> {
        self.0.drill.as_deref()
    }
}
