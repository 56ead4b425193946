//! The desk API over HTTP: requests, the change stream, and the threads that run them
//! and reconnect by themselves.

use std::io::Read;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use reqwest::StatusCode;
use reqwest::blocking::{Client as Http, RequestBuilder};
use schemas::ActionKind;
use schemas::desk::{
    ActionReceipt, AlertDetail, AssignRequest, DeskEvent, ErrorBody, NoteRequest, SSE_CHANGE,
    SSE_HEALTH, Session,
};
use serde::de::DeserializeOwned;

use crate::app::{ActionError, Connection, Msg, Request};
use crate::sse::SseParser;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer (connection refused, reset, timeout).
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    /// The desk answered with an error.
    #[error("{status}: {}", body.message)]
    Refused {
        /// HTTP status.
        status: u16,
        /// The desk's error body.
        body: ErrorBody,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

/// One HTTP call of the API, as it goes over the wire (what key-handling tests check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path under the desk's URL, such as `/api/alerts/abc/acknowledge`.
    pub path: String,
    /// JSON body, if any.
    pub body: Option<serde_json::Value>,
}

/// The path segment `s`, percent-encoded where it is not unreserved.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The HTTP call a request becomes.
pub fn call_for(request: &Request) -> HttpCall {
    match request {
        Request::Session => HttpCall {
            method: "GET",
            path: "/api/session".into(),
            body: None,
        },
        Request::Detail(id) => HttpCall {
            method: "GET",
            path: format!("/api/alerts/{}", segment(id)),
            body: None,
        },
        Request::Act { alert_id, action } => {
            let (verb, body) = match action {
                ActionKind::Acknowledge => ("acknowledge", None),
                ActionKind::Escalate => ("escalate", None),
                ActionKind::Resolve => ("resolve", None),
                ActionKind::FalsePositive => ("false_positive", None),
                ActionKind::Assign { officer_id } => (
                    "assign",
                    serde_json::to_value(AssignRequest {
                        officer_id: officer_id.clone(),
                    })
                    .ok(),
                ),
                ActionKind::Note { text } => (
                    "note",
                    serde_json::to_value(NoteRequest { text: text.clone() }).ok(),
                ),
                ActionKind::AcceptHandover => ("accept", None),
            };
            let path = match (alert_id, action) {
                (_, ActionKind::AcceptHandover) | (None, _) => "/api/handover/accept".to_string(),
                (Some(id), _) => format!("/api/alerts/{}/{verb}", segment(id)),
            };
            HttpCall {
                method: "POST",
                path,
                body,
            }
        }
    }
}

/// A client of one desk, authenticated by an officer's token.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    http: Http,
    stream: Http,
}

impl Client {
    /// A client of the desk at `url` (such as `http://127.0.0.1:8080`) with `token`.
    pub fn new(url: &str, token: &str) -> Result<Self, ClientError> {
        let http = Http::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .build()?;
        // The change stream stays open: no overall timeout, only for connecting.
        let stream = Http::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(None)
            .build()?;
        Ok(Self {
            base: url.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
            http,
            stream,
        })
    }

    /// The desk's URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn builder(&self, http: &Http, call: &HttpCall) -> RequestBuilder {
        let url = format!("{}{}", self.base, call.path);
        let b = match call.method {
            "POST" => http.post(url),
            _ => http.get(url),
        };
        let b = b.bearer_auth(&self.token);
        match &call.body {
            Some(body) => b.json(body),
            None => b,
        }
    }

    fn send<T: DeserializeOwned>(&self, call: &HttpCall) -> Result<T, ClientError> {
        let resp = self.builder(&self.http, call).send()?;
        let status = resp.status();
        let bytes = resp.bytes()?;
        if !status.is_success() {
            return Err(refused(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// `GET /api/session`.
    pub fn session(&self) -> Result<Session, ClientError> {
        self.send(&call_for(&Request::Session))
    }

    /// `GET /api/alerts/{id}`.
    pub fn detail(&self, id: &str) -> Result<AlertDetail, ClientError> {
        self.send(&call_for(&Request::Detail(id.to_string())))
    }

    /// An officer action.
    pub fn act(
        &self,
        alert_id: Option<&str>,
        action: &ActionKind,
    ) -> Result<ActionReceipt, ActionError> {
        let call = call_for(&Request::Act {
            alert_id: alert_id.map(str::to_string),
            action: action.clone(),
        });
        match self.send(&call) {
            Ok(r) => Ok(r),
            Err(ClientError::Refused { body, .. }) => Err(ActionError::Refused(body)),
            Err(e) => Err(ActionError::Failed(e.to_string())),
        }
    }

    /// Reads the change stream from after `last_id` (the whole desk first without one),
    /// handing each event to `on` until it returns false or the stream ends.
    pub fn stream(
        &self,
        last_id: Option<u64>,
        mut on: impl FnMut(DeskEvent) -> bool,
    ) -> Result<(), ClientError> {
        let call = HttpCall {
            method: "GET",
            path: "/api/events".into(),
            body: None,
        };
        let mut b = self
            .builder(&self.stream, &call)
            .header("Accept", "text/event-stream");
        if let Some(id) = last_id {
            b = b.header("Last-Event-ID", id.to_string());
        }
        let mut resp = b.send()?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes()?;
            return Err(refused(status, &bytes));
        }
        let mut parser = SseParser::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = resp
                .read(&mut buf)
                .map_err(|e| ClientError::Protocol(format!("the stream broke: {e}")))?;
            if n == 0 {
                return Err(ClientError::Protocol("the desk closed the stream".into()));
            }
            for ev in parser.feed(&buf[..n]) {
                if ev.event != SSE_CHANGE && ev.event != SSE_HEALTH {
                    continue;
                }
                let event: DeskEvent = serde_json::from_str(&ev.data)
                    .map_err(|e| ClientError::Protocol(format!("bad event: {e}")))?;
                if !on(event) {
                    return Ok(());
                }
            }
        }
    }
}

fn refused(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => ClientError::Refused {
            status: status.as_u16(),
            body,
        },
        Err(_) => ClientError::Protocol(format!(
            "{status}: {}",
            String::from_utf8_lossy(bytes)
                .chars()
                .take(200)
                .collect::<String>()
        )),
    }
}

/// Backoff between reconnection attempts: quick at first, then every 2 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(match attempt {
        0 | 1 => 200,
        2 => 500,
        3 => 1000,
        _ => 2000,
    })
}

/// Starts the network threads: the change stream (reconnecting by itself, resuming
/// from the last event id) and a worker sending requests. Messages go to `to_app`;
/// both threads end once it is dropped. Returns where to send requests.
pub fn spawn(client: Client, to_app: Sender<Msg>) -> std::io::Result<Sender<Request>> {
    let (tx, rx) = crossbeam_channel::unbounded::<Request>();
    {
        let client = client.clone();
        let to_app = to_app.clone();
        std::thread::Builder::new()
            .name("desk-stream".into())
            .spawn(move || stream_loop(&client, &to_app))?;
    }
    std::thread::Builder::new()
        .name("desk-requests".into())
        .spawn(move || request_loop(&client, &rx, &to_app))?;
    Ok(tx)
}

fn stream_loop(client: &Client, to_app: &Sender<Msg>) {
    let mut last_id: Option<u64> = None;
    let mut attempt: u32 = 0;
    loop {
        let session = client.session();
        let result = match session {
            Ok(s) => {
                if to_app.send(Msg::Session(s)).is_err() {
                    return;
                }
                let mut connected = false;
                let mut alive = true;
                let r = client.stream(last_id, |event| {
                    if !connected {
                        connected = true;
                        attempt = 0;
                        alive = to_app.send(Msg::Connection(Connection::Connected)).is_ok();
                    }
                    if let Some(t) = event.time_ms() {
                        last_id = Some(t);
                    }
                    alive = alive && to_app.send(Msg::Stream(event)).is_ok();
                    alive
                });
                if !alive {
                    return;
                }
                r
            }
            Err(e) => Err(e),
        };
        let error = match result {
            Ok(()) => "the stream ended".to_string(),
            Err(e) => e.to_string(),
        };
        attempt = attempt.saturating_add(1);
        tracing::debug!(%error, attempt, "desk stream lost");
        let msg = Msg::Connection(Connection::Disconnected { error, attempt });
        if to_app.send(msg).is_err() {
            return;
        }
        std::thread::sleep(backoff(attempt));
    }
}

fn request_loop(client: &Client, rx: &Receiver<Request>, to_app: &Sender<Msg>) {
    while let Ok(first) = rx.recv() {
        // Only the latest detail request matters: scrolling fast through the queue
        // must not queue a fetch per line.
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let last_detail = batch.iter().rposition(|r| matches!(r, Request::Detail(_)));
        for (i, request) in batch.into_iter().enumerate() {
            let msg = match request {
                Request::Detail(_) if Some(i) != last_detail => continue,
                Request::Detail(id) => match client.detail(&id) {
                    Ok(d) => Msg::Detail(Box::new(d)),
                    Err(e) => Msg::DetailFailed {
                        id,
                        error: e.to_string(),
                    },
                },
                Request::Session => match client.session() {
                    Ok(s) => Msg::Session(s),
                    Err(_) => continue,
                },
                Request::Act { alert_id, action } => {
                    let result = client.act(alert_id.as_deref(), &action);
                    Msg::Acted {
                        alert_id,
                        action,
                        result,
                    }
                }
            };
            if to_app.send(msg).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_become_their_api_calls() {
        let act = |action| {
            call_for(&Request::Act {
                alert_id: Some("a b".into()),
                action,
            })
        };
        assert_eq!(
            act(ActionKind::Acknowledge).path,
            "/api/alerts/a%20b/acknowledge"
        );
        assert_eq!(
            act(ActionKind::FalsePositive).path,
            "/api/alerts/a%20b/false_positive"
        );
        let note = act(ActionKind::Note { text: "hi".into() });
        assert_eq!(note.method, "POST");
        assert_eq!(note.body, Some(serde_json::json!({"text": "hi"})));
        let accept = call_for(&Request::Act {
            alert_id: None,
            action: ActionKind::AcceptHandover,
        });
        assert_eq!(accept.path, "/api/handover/accept");
    }
}
