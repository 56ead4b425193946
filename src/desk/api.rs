//! The desk API's routes: `/api/…` for officers (bearer tokens), `/healthz`, `/readyz`
//! and `/metrics` for operators. Errors become responses here and nowhere else.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use schemas::ActionKind;
use schemas::desk::{
    ActionOutcome, ActionReceipt, ActionRecord, ApiErrorCode, AssignRequest, DutyView, ErrorBody,
    NoteRequest, OfficerInfo, QueueItem, QueueQuery, QueueSort, Session,
};

use super::actions::{self, ActionSink};
use super::hub::DeskHub;
use super::metrics::DeskMetrics;
use super::officers::Officers;
use super::view;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    /// The desk's state.
    pub hub: DeskHub,
    /// Who may call.
    pub officers: Arc<Officers>,
    /// Where actions go.
    pub sink: Arc<dyn ActionSink>,
    /// The desk's metrics.
    pub metrics: DeskMetrics,
    /// Renders `/metrics` (the whole process's registry).
    pub render_metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// How long an action request waits for the dataflow's verdict before answering
    /// `202` with the verdict pending.
    pub verdict_wait: Duration,
}

/// An error of the API, as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: ApiErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error,
                message: message.into(),
                owner: None,
                action_id: None,
            },
        }
    }

    fn unauthorized(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ApiErrorCode::Unauthorized,
            message,
        )
    }

    fn not_found(message: String) -> Self {
        Self::new(StatusCode::NOT_FOUND, ApiErrorCode::NotFound, message)
    }

    fn bad_request(message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ApiErrorCode::BadRequest, message)
    }

    fn unavailable(message: String) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiErrorCode::Unavailable,
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// The calling officer, authenticated by bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Name.
    pub name: String,
    /// Center, as the roster writes it.
    pub center: String,
    /// Index of the center in the roster.
    pub center_index: usize,
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::unauthorized("no bearer token: send Authorization: Bearer TOKEN (fusion officer add gives one)")
            })?;
        let (name, center) = state
            .officers
            .authenticate(token)
            .ok_or_else(|| ApiError::unauthorized("the token is not valid, or it was revoked"))?;
        let centers = &state.hub.ctx().centers;
        let center_index = centers.index(&center).ok_or_else(|| {
            ApiError::unauthorized(&format!(
                "the officer's center {center:?} is not in the roster"
            ))
        })?;
        let center = centers
            .get(center_index)
            .map(|c| c.name.clone())
            .unwrap_or(center);
        Ok(Caller {
            name,
            center,
            center_index,
        })
    }
}

/// The router of the desk.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/session", get(session))
        .route("/api/alerts", get(queue))
        .route("/api/alerts/{id}", get(alert))
        .route("/api/alerts/{id}/explain", get(explain))
        .route("/api/alerts/{id}/{verb}", post(act_on_alert))
        .route("/api/handover/accept", post(accept_handover))
        .route("/api/actions/{id}", get(action_status))
        .route("/api/duty", get(duty))
        .route("/api/health", get(health))
        .route("/api/events", get(super::stream::events))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// Counts each request by route template and status class.
async fn count(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let response = next.run(req).await;
    let class = match response.status().as_u16() {
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    };
    state
        .metrics
        .requests
        .with_label_values(&[route.as_str(), class])
        .inc();
    response
}

async fn readyz(State(state): State<ApiState>) -> (StatusCode, &'static str) {
    if state.hub.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "rehydrating\n")
    }
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        (state.render_metrics)(),
    )
}

async fn session(State(state): State<ApiState>, caller: Caller) -> Json<Session> {
    Json(Session {
        officer: OfficerInfo {
            name: caller.name,
            center: caller.center,
        },
        drill: state.hub.drill().map(str::to_string),
        centers: state.hub.ctx().centers.infos(),
    })
}

fn store_gone() -> ApiError {
    ApiError::unavailable("the desk's state is unavailable; restart fusion run".into())
}

async fn queue(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<QueueQuery>, QueryRejection>,
) -> Result<Json<Vec<QueueItem>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let ctx = state.hub.ctx();
    let mut items = state
        .hub
        .read(|s| {
            s.open()
                .map(|t| view::tracked_item(t, caller.center_index, ctx))
                .collect::<Vec<_>>()
        })
        .ok_or_else(store_gone)?;
    let needle = q.q.as_deref().map(str::to_ascii_lowercase);
    items.retain(|i| {
        q.center
            .as_deref()
            .is_none_or(|c| i.owner.eq_ignore_ascii_case(c))
            && q.state.is_none_or(|s| i.state == s)
            && q.severity.is_none_or(|s| i.severity >= s)
            && needle.as_deref().is_none_or(|n| {
                let has = |s: &str| s.to_ascii_lowercase().contains(n);
                has(&i.id) || has(&i.rule) || has(&i.owner) || i.title.as_deref().is_some_and(has)
            })
    });
    // One queue order for the API and the terminal.
    let sort = q.sort.unwrap_or(QueueSort::Severity);
    items.sort_by(|a, b| ops_tui::app::compare(sort, a, b));
    if let Some(limit) = q.limit {
        items.truncate(limit);
    }
    Ok(Json(items))
}

async fn alert(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<schemas::desk::AlertDetail>, ApiError> {
    let ctx = state.hub.ctx();
    state
        .hub
        .read(|s| {
            s.get(&id)
                .map(|(t, open)| view::detail(t, open, caller.center_index, ctx))
        })
        .ok_or_else(store_gone)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no alert {id} on the desk")))
}

async fn explain(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<schemas::desk::ExplainView>, ApiError> {
    let ctx = state.hub.ctx();
    state
        .hub
        .read(|s| {
            s.get(&id)
                .map(|(t, _)| view::explain_view(t, caller.center_index, ctx))
        })
        .ok_or_else(store_gone)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no alert {id} on the desk")))
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))
}

async fn act_on_alert(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, verb)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<ActionReceipt>), ApiError> {
    let kind = match verb.as_str() {
        "acknowledge" => ActionKind::Acknowledge,
        "escalate" => ActionKind::Escalate,
        "resolve" => ActionKind::Resolve,
        "false_positive" => ActionKind::FalsePositive,
        "assign" => ActionKind::Assign {
            officer_id: parse_body::<AssignRequest>(&body)?.officer_id,
        },
        "note" => ActionKind::Note {
            text: parse_body::<NoteRequest>(&body)?.text,
        },
        other => {
            return Err(ApiError::not_found(format!(
                "no action {other:?}: use acknowledge, assign, note, escalate, resolve or false_positive"
            )));
        }
    };
    let open = state
        .hub
        .read(|s| s.get(&id).map(|(_, open)| open))
        .ok_or_else(store_gone)?;
    match open {
        Some(true) => {}
        Some(false) => {
            return Err(ApiError::bad_request(format!(
                "alert {id} is closed (resolved or false positive)"
            )));
        }
        None => {
            return Err(ApiError::not_found(format!(
                "no open alert {id} on the desk"
            )));
        }
    }
    act(&state, &caller, &id, kind).await
}

async fn accept_handover(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<(StatusCode, Json<ActionReceipt>), ApiError> {
    act(&state, &caller, "", ActionKind::AcceptHandover).await
}

fn verb_label(kind: &ActionKind) -> &'static str {
    match kind {
        ActionKind::Acknowledge => "acknowledge",
        ActionKind::Assign { .. } => "assign",
        ActionKind::Note { .. } => "note",
        ActionKind::Escalate => "escalate",
        ActionKind::Resolve => "resolve",
        ActionKind::FalsePositive => "false_positive",
        ActionKind::AcceptHandover => "accept_handover",
    }
}

/// Sends an action to the dataflow and waits (a little) for its verdict: a rejection
/// is a `403` carrying routing's reason, anything else a `202`.
async fn act(
    state: &ApiState,
    caller: &Caller,
    alert_id: &str,
    kind: ActionKind,
) -> Result<(StatusCode, Json<ActionReceipt>), ApiError> {
    let label = verb_label(&kind);
    let counted = |outcome: &str| {
        state
            .metrics
            .actions
            .with_label_values(&[label, outcome])
            .inc();
    };
    if state.hub.read(|s| s.duty().is_none()).unwrap_or(true) {
        counted("failed");
        return Err(ApiError::unavailable(
            "no center is on duty yet (no roster, or the dataflow has not started): actions cannot be judged".into(),
        ));
    }
    let action = actions::action(
        &caller.name,
        &caller.center,
        alert_id,
        kind,
        state.hub.now(),
    );
    action
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let id = action.action_id.clone();
    let at = action.at;
    let mut frontier = state.hub.frontier();
    state.hub.submitted(&action);
    let sink = Arc::clone(&state.sink);
    let sent = tokio::task::spawn_blocking(move || sink.send(&action)).await;
    match sent {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            counted("failed");
            return Err(ApiError::unavailable(e.to_string()));
        }
        Err(e) => {
            counted("failed");
            return Err(ApiError::unavailable(format!(
                "the action was not sent: {e}"
            )));
        }
    }
    tracing::info!(action_id = %id, officer = %caller.name, center = %caller.center, action = label, "desk action sent");
    let deadline = tokio::time::Instant::now() + state.verdict_wait;
    loop {
        let outcome = state
            .hub
            .read(|s| s.action(&id).map(|t| (t.outcome.clone(), t.owner.clone())))
            .flatten();
        match outcome {
            Some((ActionOutcome::Rejected { code, reason }, owner)) => {
                counted("rejected");
                let mut e = ApiError::new(StatusCode::FORBIDDEN, ApiErrorCode::NotOwner, reason);
                e.body.owner = owner;
                e.body.action_id = Some(id);
                tracing::info!(code, "desk action rejected by routing");
                return Err(e);
            }
            Some((ActionOutcome::Accepted, _)) => {
                counted("accepted");
                return Ok((
                    StatusCode::ACCEPTED,
                    Json(ActionReceipt {
                        action_id: id,
                        at,
                        outcome: ActionOutcome::Accepted,
                    }),
                ));
            }
            Some((ActionOutcome::Pending, _)) | None => {}
        }
        if tokio::time::timeout_at(deadline, frontier.changed())
            .await
            .map_or(true, |r| r.is_err())
        {
            counted("pending");
            return Ok((
                StatusCode::ACCEPTED,
                Json(ActionReceipt {
                    action_id: id,
                    at,
                    outcome: ActionOutcome::Pending,
                }),
            ));
        }
    }
}

async fn action_status(
    State(state): State<ApiState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ActionRecord>, ApiError> {
    state
        .hub
        .read(|s| {
            s.action(&id).map(|t| ActionRecord {
                action: t.action.clone(),
                outcome: t.outcome.clone(),
            })
        })
        .ok_or_else(store_gone)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no action {id} known to this desk")))
}

async fn duty(State(state): State<ApiState>, _caller: Caller) -> Result<Json<DutyView>, ApiError> {
    let centers = state.hub.ctx().centers.infos();
    let now = state.hub.now();
    state
        .hub
        .read(|s| DutyView {
            now: (s.frontier() > 0).then_some(now),
            duty: s.duty().cloned(),
            centers,
            handovers: s.handovers().to_vec(),
        })
        .map(Json)
        .ok_or_else(store_gone)
}

async fn health(
    State(state): State<ApiState>,
    _caller: Caller,
) -> Json<schemas::desk::PipelineHealth> {
    Json(state.hub.health())
}
