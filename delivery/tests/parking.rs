//! Messages that will not be retried are parked — kept, listed, counted, raised as an
//! operator alert — and come back with `requeue_parked`; 401/403 are retried within the
//! budget. Each test is named after the failure, against real HTTP receivers on
//! 127.0.0.1 ephemeral ports.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

mod common;

use common::*;
use delivery::{Outbox, Outcome, ParkReason};
use schemas::{ChangeKind, Tlp};
use tokio::sync::watch;

/// Runs the workers until nothing is pending (parked messages are not pending).
async fn settle(outbox: &Outbox) {
    let (stop, shutdown) = watch::channel(false);
    let workers = outbox.spawn(shutdown);
    wait_for("nothing pending", || outbox.pending().unwrap() == 0).await;
    stop.send(true).unwrap();
    workers.join_all().await;
}

fn open(dir: &std::path::Path, bureaus: &[(&str, &str)]) -> Outbox {
    let subs = subscriptions(dir, bureaus);
    Outbox::open(&dir.join("outbox"), subs, fast_config()).unwrap()
}

fn metric(outbox: &Outbox, line_start: &str) -> Option<f64> {
    outbox
        .metrics()
        .render()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parks_a_message_refused_with_400_keeps_it_visible_and_requeues_it() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver(Behaviour::Always(400)).await;
    let outbox = open(dir.path(), &[("ncb-fr", &rx.url)]);
    outbox
        .enqueue(&change(
            ChangeKind::Opened,
            1000,
            alert("a1", Tlp::Green, &[]),
        ))
        .unwrap();
    settle(&outbox).await;

    assert_eq!(
        rx.log.lock().unwrap().requests.len(),
        1,
        "400 is not retried"
    );
    let parked = outbox.parked(None).unwrap();
    assert_eq!(parked.len(), 1, "the refused message is kept");
    let p = &parked[0];
    assert_eq!(
        (
            p.recipient.as_str(),
            p.alert_id.as_str(),
            p.version,
            p.attempts
        ),
        ("ncb-fr", "a1", 1000, 1)
    );
    assert_eq!((p.last_status, p.reason), (Some(400), ParkReason::Refused));
    assert!(p.detail.contains("HTTP 400"), "{}", p.detail);
    // Counted, and raised as an operator alert.
    assert_eq!(
        metric(
            &outbox,
            "fusion_delivery_parked_messages_total{reason=\"refused\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&outbox, "fusion_delivery_parked_messages "),
        Some(1.0)
    );
    let alerts = outbox.operator_alerts().unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].recipient, "ncb-fr");
    assert!(alerts[0].detail.contains("parked"), "{}", alerts[0].detail);
    assert!(
        outbox
            .log()
            .unwrap()
            .iter()
            .any(|e| e.outcome == Outcome::Parked && e.status == Some(400))
    );

    // The bureau fixes its side; an operator re-queues; the message goes out.
    *rx.behaviour.lock().unwrap() = Behaviour::Always(204);
    let report = outbox.requeue_parked(Some("ncb-fr"), "test").unwrap();
    assert_eq!(report.requeued, 1);
    assert_eq!(outbox.pending().unwrap(), 1);
    settle(&outbox).await;
    let got = accepted_messages(&rx.log.lock().unwrap());
    assert_eq!(
        got,
        vec![("a1".to_string(), 1000, "alert.opened".to_string())]
    );
    assert!(outbox.parked(None).unwrap().is_empty());
    assert!(outbox.operator_alerts().unwrap().is_empty());
    assert_eq!(
        metric(&outbox, "fusion_delivery_parked_messages "),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_401_with_backoff_and_delivers_once_the_secret_is_rotated() {
    let dir = tempfile::tempdir().unwrap();
    // The bureau answers 401 three times (it has not loaded the new secret yet), then 204.
    let rx = receiver(Behaviour::FailFirst(3, 401)).await;
    let outbox = open(dir.path(), &[("ncb-fr", &rx.url)]);
    outbox
        .enqueue(&change(
            ChangeKind::Opened,
            1000,
            alert("a1", Tlp::Green, &[]),
        ))
        .unwrap();
    settle(&outbox).await;
    assert_eq!(rx.log.lock().unwrap().accepted.len(), 1);
    assert!(outbox.parked(None).unwrap().is_empty());
    let attempts: Vec<_> = outbox
        .log()
        .unwrap()
        .into_iter()
        .filter(|e| e.attempt > 0)
        .map(|e| (e.status, e.outcome))
        .collect();
    assert_eq!(
        attempts,
        vec![
            (Some(401), Outcome::Retry),
            (Some(401), Outcome::Retry),
            (Some(401), Outcome::Retry),
            (Some(204), Outcome::Delivered)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parks_a_message_refused_with_403_once_the_retry_budget_is_spent() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver(Behaviour::Always(403)).await;
    let outbox = open(dir.path(), &[("ncb-fr", &rx.url)]);
    outbox
        .enqueue(&change(
            ChangeKind::Opened,
            1000,
            alert("a1", Tlp::Green, &[]),
        ))
        .unwrap();
    settle(&outbox).await;
    let budget = fast_config().retry.delays.len();
    assert_eq!(rx.log.lock().unwrap().requests.len(), budget);
    let parked = outbox.parked(Some("ncb-fr")).unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].reason, ParkReason::Unauthorized);
    assert_eq!(parked[0].attempts as usize, budget);
    assert_eq!(parked[0].last_status, Some(403));
    assert_eq!(
        metric(
            &outbox,
            "fusion_delivery_parked_messages_total{reason=\"unauthorized\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parks_messages_to_an_endpoint_that_refuses_connections_once_retries_are_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let outbox = open(dir.path(), &[("ncb-ar", &url)]);
    for i in 0..3 {
        outbox
            .enqueue(&change(
                ChangeKind::Opened,
                1000,
                alert(&format!("a{i}"), Tlp::Green, &[]),
            ))
            .unwrap();
    }
    settle(&outbox).await;
    let parked = outbox.parked(None).unwrap();
    assert_eq!(parked.len(), 3, "nothing is dropped");
    assert!(parked.iter().all(|p| p.reason == ParkReason::Exhausted
        && p.last_status.is_none()
        && p.detail.contains("request failed")));
    assert_eq!(
        metric(
            &outbox,
            "fusion_delivery_parked_messages_total{reason=\"exhausted\"}"
        ),
        Some(3.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_version_does_not_hold_back_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver(Behaviour::FailFirst(1, 422)).await;
    let outbox = open(dir.path(), &[("ncb-fr", &rx.url)]);
    outbox
        .enqueue(&change(
            ChangeKind::Opened,
            1000,
            alert("a1", Tlp::Green, &[]),
        ))
        .unwrap();
    outbox
        .enqueue(&change(
            ChangeKind::Updated,
            2000,
            alert("a1", Tlp::Green, &[]),
        ))
        .unwrap();
    settle(&outbox).await;
    // v1 refused and parked, v2 delivered after it.
    assert_eq!(
        accepted_messages(&rx.log.lock().unwrap()),
        vec![("a1".to_string(), 2000, "alert.updated".to_string())]
    );
    let parked = outbox.parked(None).unwrap();
    assert_eq!((parked.len(), parked[0].version), (1, 1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retraction_cancels_a_parked_message() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver(Behaviour::Always(400)).await;
    let outbox = open(dir.path(), &[("ncb-fr", &rx.url)]);
    outbox
        .enqueue(&change(
            ChangeKind::Opened,
            1000,
            alert("a1", Tlp::Green, &[]),
        ))
        .unwrap();
    settle(&outbox).await;
    assert_eq!(outbox.parked(None).unwrap().len(), 1);
    // The owner revokes the indicator: the parked alert must never be sent on a requeue.
    let r = outbox
        .enqueue(&change(
            ChangeKind::Retracted,
            2000,
            alert("a1", Tlp::Green, &[]),
        ))
        .unwrap();
    assert_eq!(r.cancelled, 1);
    assert!(outbox.parked(None).unwrap().is_empty());
    assert!(outbox.operator_alerts().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_re_enables_an_endpoint_disabled_by_410() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver(Behaviour::Always(410)).await;
    let outbox = open(dir.path(), &[("ncb-de", &rx.url)]);
    outbox
        .enqueue(&change(
            ChangeKind::Opened,
            1000,
            alert("a1", Tlp::Green, &[]),
        ))
        .unwrap();
    let (_stop, shutdown) = watch::channel(false);
    // The worker stops by itself once its endpoint is disabled.
    outbox.spawn(shutdown).join_all().await;
    assert_eq!(outbox.pending().unwrap(), 0);
    assert_eq!(outbox.operator_alerts().unwrap().len(), 1);

    *rx.behaviour.lock().unwrap() = Behaviour::Always(204);
    let report = outbox.requeue_parked(None, "test").unwrap();
    assert_eq!(report.enabled, vec!["ncb-de".to_string()]);
    assert_eq!(
        outbox.pending().unwrap(),
        1,
        "the held message is pending again"
    );
    settle(&outbox).await;
    assert_eq!(rx.log.lock().unwrap().accepted.len(), 1);
    assert!(outbox.operator_alerts().unwrap().is_empty());
}
