//! An expired alert leaves the outbox's indexes once nothing of it is left to send, so
//! the outbox's per-alert state is bounded by the open alerts (plus a tombstone per
//! alert closed within the horizon), and what was queued before the expiry still goes out.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

mod common;

use std::time::Duration;

use common::*;
use delivery::{AlertFootprint, Outbox};
use schemas::{ChangeKind, Tlp};
use tokio::sync::watch;

async fn settle(outbox: &Outbox) {
    let (stop, shutdown) = watch::channel(false);
    let workers = outbox.spawn(shutdown);
    wait_for("nothing pending", || outbox.pending().unwrap() == 0).await;
    stop.send(true).unwrap();
    workers.join_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_alert_leaves_the_outbox_once_its_queued_messages_went_out() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver(Behaviour::Always(204)).await;
    let subs = subscriptions(dir.path(), &[("ncb-fr", &rx.url), ("ncb-de", &rx.url)]);
    let outbox = Outbox::open(&dir.path().join("outbox"), subs, fast_config()).unwrap();

    // Queued while no worker runs, then the alert expires.
    let a1 = alert("a1", Tlp::Green, &[]);
    outbox
        .enqueue(&change(ChangeKind::Opened, 1000, a1.clone()))
        .unwrap();
    let r = outbox
        .enqueue(&change(ChangeKind::Expired, 5000, a1.clone()))
        .unwrap();
    assert_eq!((r.queued, r.cancelled, r.retractions), (0, 0, 0));
    let before = outbox.alert_footprint("a1").unwrap();
    assert!(before.state, "kept while messages are queued");
    assert_eq!(before.messages, 2);

    // The queued messages still go out (an expiry withdraws nothing)…
    settle(&outbox).await;
    assert_eq!(
        accepted_messages(&rx.log.lock().unwrap()),
        vec![
            ("a1".to_string(), 1000, "alert.opened".to_string()),
            ("a1".to_string(), 1000, "alert.opened".to_string())
        ]
    );
    // …and then nothing of the alert is left but its tombstone.
    assert_eq!(
        outbox.alert_footprint("a1").unwrap(),
        AlertFootprint {
            state: false,
            messages: 0,
            finished: 0,
            tombstone: Some(5000),
        }
    );
    assert_eq!(outbox.alert_counts().unwrap(), (0, 1));

    // A replay of its changes (a restart re-reading them) queues nothing.
    for (kind, v) in [(ChangeKind::Opened, 1000), (ChangeKind::Expired, 5000)] {
        let r = outbox.enqueue(&change(kind, v, a1.clone())).unwrap();
        assert!(r.stale);
        assert_eq!(r.queued, 0);
    }
    assert_eq!(outbox.pending().unwrap(), 0);
    assert_eq!(outbox.alert_counts().unwrap(), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_alert_state_is_bounded_by_the_open_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver(Behaviour::Always(204)).await;
    let subs = subscriptions(dir.path(), &[("ncb-fr", &rx.url)]);
    let mut config = fast_config();
    // Tombstones last 10 s of logical time.
    config.closed_horizon = Duration::from_secs(10);
    let outbox = Outbox::open(&dir.path().join("outbox"), subs, config).unwrap();
    // 60 alerts open over a minute of logical time, each updated, and each expires 5 s
    // after it opened; every message is delivered.
    let mut changes = Vec::new();
    for i in 0..60u64 {
        let a = alert(&format!("a{i}"), Tlp::Green, &[]);
        let t = i * 1000;
        changes.push(change(ChangeKind::Opened, t + 1, a.clone()));
        changes.push(change(ChangeKind::Updated, t + 2, a.clone()));
        changes.push(change(ChangeKind::Expired, t + 5000, a));
    }
    changes.sort_by_key(|c| c.version);
    let (stop, shutdown) = watch::channel(false);
    let workers = outbox.spawn(shutdown);
    for c in &changes {
        outbox.enqueue(c).unwrap();
    }
    wait_for("nothing pending", || outbox.pending().unwrap() == 0).await;
    stop.send(true).unwrap();
    workers.join_all().await;
    assert_eq!(rx.log.lock().unwrap().accepted.len(), 120);
    let (states, tombstones) = outbox.alert_counts().unwrap();
    assert_eq!(states, 0, "every alert expired and was delivered");
    // Only alerts closed within 10 s of the newest version (64 000) keep a tombstone:
    // a49 (closed at 54 000) to a59.
    assert_eq!(tombstones, 11, "tombstones for 60 closed alerts");
    assert_eq!(
        outbox.alert_footprint("a0").unwrap(),
        AlertFootprint::default(),
        "an alert closed long ago leaves nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_alert_with_a_parked_message_is_kept_until_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver(Behaviour::Always(400)).await;
    let subs = subscriptions(dir.path(), &[("ncb-fr", &rx.url)]);
    let outbox = Outbox::open(&dir.path().join("outbox"), subs, fast_config()).unwrap();
    let a1 = alert("a1", Tlp::Green, &[]);
    outbox
        .enqueue(&change(ChangeKind::Opened, 1000, a1.clone()))
        .unwrap();
    settle(&outbox).await;
    outbox
        .enqueue(&change(ChangeKind::Expired, 5000, a1.clone()))
        .unwrap();
    let kept = outbox.alert_footprint("a1").unwrap();
    assert!(kept.state && kept.messages == 1, "{kept:?}");

    *rx.behaviour.lock().unwrap() = Behaviour::Always(204);
    outbox.requeue_parked(None, "test").unwrap();
    settle(&outbox).await;
    assert_eq!(rx.log.lock().unwrap().accepted.len(), 1);
    assert_eq!(outbox.alert_footprint("a1").unwrap().tombstone, Some(5000));
    assert!(!outbox.alert_footprint("a1").unwrap().state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_that_expires_with_nothing_queued_leaves_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let subs = subscriptions(dir.path(), &[("ncb-fr", "http://127.0.0.1:9/unused")]);
    let outbox = Outbox::open(&dir.path().join("outbox"), subs, fast_config()).unwrap();
    // RED without the bureau on the sharing list: withheld, nothing queued.
    let a1 = alert("a1", Tlp::Red, &["ncb-xx"]);
    let r = outbox
        .enqueue(&change(ChangeKind::Opened, 1000, a1.clone()))
        .unwrap();
    assert_eq!((r.queued, r.withheld), (0, 1));
    assert!(outbox.alert_footprint("a1").unwrap().state);
    outbox
        .enqueue(&change(ChangeKind::Expired, 2000, a1))
        .unwrap();
    assert_eq!(outbox.alert_counts().unwrap(), (0, 1));
}
