//! One signed POST per attempt, and what its answer means for the message.

use std::time::Duration;

use super::store::{Queued, now_ms};
use crate::webhook::{HEADER_DRILL, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Secret};

/// What one HTTP attempt came back with.
pub(super) enum Response {
    /// A status and the `Retry-After` it asked for.
    Status(u16, Option<Duration>),
    /// No response (connection refused, timeout, …).
    Error(String),
}

/// What an answer means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// 2xx: delivered.
    Delivered,
    /// 410: the endpoint is gone; disable it.
    Gone,
    /// A 4xx that a later attempt would get again (bad request, not found, too large…):
    /// park the message at once.
    Refused,
    /// Worth another attempt: 5xx, timeouts, 408, 429, and 401/403 (a secret being rotated
    /// or a clock skewed on either side heals without us).
    Retry {
        /// 429/502/504: the endpoint asks everyone to slow down.
        throttle: bool,
    },
}

/// Classifies an attempt's response.
pub(super) fn verdict(response: &Response) -> Verdict {
    match response {
        Response::Status(s, _) if (200..300).contains(s) => Verdict::Delivered,
        Response::Status(410, _) => Verdict::Gone,
        Response::Status(401 | 403 | 408, _) => Verdict::Retry { throttle: false },
        Response::Status(429, _) => Verdict::Retry { throttle: true },
        Response::Status(s, _) if (400..500).contains(s) => Verdict::Refused,
        Response::Status(s, _) => Verdict::Retry {
            throttle: matches!(s, 429 | 502 | 504),
        },
        Response::Error(_) => Verdict::Retry { throttle: false },
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// One signed POST; the signature timestamp is the attempt's time.
pub(super) async fn send(
    client: &reqwest::Client,
    url: &str,
    secret: &Secret,
    q: &Queued,
    drill: Option<&str>,
) -> Response {
    let ts = now_ms() / 1000;
    let sig = secret.sign(&q.webhook_id, ts, q.body.as_bytes());
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(HEADER_ID, &q.webhook_id)
        .header(HEADER_TIMESTAMP, ts.to_string())
        .header(HEADER_SIGNATURE, sig);
    if let Some(name) = drill {
        req = req.header(HEADER_DRILL, name);
    }
    let res = req.body(q.body.clone()).send().await;
    match res {
        Ok(r) => Response::Status(r.status().as_u16(), retry_after(r.headers())),
        Err(e) if e.is_timeout() => Response::Error(format!("timed out: {e}")),
        Err(e) => Response::Error(format!("request failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_permanent_client_errors_are_refused() {
        let v = |s: u16| verdict(&Response::Status(s, None));
        assert_eq!(v(204), Verdict::Delivered);
        assert_eq!(v(410), Verdict::Gone);
        for s in [400, 404, 405, 413, 422] {
            assert_eq!(v(s), Verdict::Refused, "{s}");
        }
        for s in [401, 403, 408, 500, 503] {
            assert_eq!(v(s), Verdict::Retry { throttle: false }, "{s}");
        }
        for s in [429, 502, 504] {
            assert_eq!(v(s), Verdict::Retry { throttle: true }, "{s}");
        }
    }
}
