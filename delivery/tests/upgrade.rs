//! Outboxes written by earlier releases open with their messages in place:
//! - layout 1: a queue table without indexes, finished messages keyed by webhook id;
//! - layout 2: one shared queue with shared indexes, before every recipient got a lane.
//!
//! What was queued goes out, what was parked stays parked, what was finished is not
//! queued again, and a retraction still finds the alert's queued messages.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

mod common;

use common::*;
use delivery::{MessageKind, Outbox, webhook_id};
use redb::{Database, TableDefinition};
use schemas::{ChangeKind, Tlp};
use tokio::sync::watch;

const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");
const FINAL: TableDefinition<&str, &[u8]> = TableDefinition::new("final");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const HEADS: TableDefinition<(&str, i64, u64), &str> = TableDefinition::new("heads");
const BY_ALERT: TableDefinition<(&str, &str, u64), u8> = TableDefinition::new("by_alert");
const IDS: TableDefinition<&str, u64> = TableDefinition::new("ids");
const PARKED: TableDefinition<(&str, u64), ()> = TableDefinition::new("parked");
const COUNTS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("counts");
const ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("alerts");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_of_the_previous_layout_is_indexed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver(Behaviour::Always(204)).await;
    let outbox_dir = dir.path().join("outbox");
    std::fs::create_dir_all(&outbox_dir).unwrap();
    let delivered = webhook_id("done", 1000, "ncb-fr", MessageKind::Alert);
    {
        // As the previous release wrote it: two versions of a1 queued, `done` finished.
        let db = Database::create(outbox_dir.join("outbox.redb")).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut queue = w.open_table(QUEUE).unwrap();
            for (seq, version) in [(0u64, 1000u64), (1, 2000)] {
                let q = serde_json::json!({
                    "webhook_id": webhook_id("a1", version, "ncb-fr", MessageKind::Alert),
                    "recipient": "ncb-fr",
                    "alert_id": "a1",
                    "version": version,
                    "kind": "alert",
                    "body": format!("{{\"type\":\"alert.updated\",\"v\":{version}}}"),
                    "attempts": 0,
                    "next_attempt_ms": 0,
                });
                queue
                    .insert(seq, serde_json::to_vec(&q).unwrap().as_slice())
                    .unwrap();
            }
            let mut finals = w.open_table(FINAL).unwrap();
            let rec = serde_json::to_vec(&("delivered", 1, 0)).unwrap();
            finals.insert(delivered.as_str(), rec.as_slice()).unwrap();
            let mut meta = w.open_table(META).unwrap();
            meta.insert("queue_seq", 2).unwrap();
        }
        w.commit().unwrap();
    }

    let subs = subscriptions(dir.path(), &[("ncb-fr", &rx.url)]);
    let outbox = Outbox::open(&outbox_dir, subs, fast_config()).unwrap();
    assert_eq!(outbox.pending().unwrap(), 2);
    // Finished before the upgrade: not queued again.
    let r = outbox
        .enqueue(&change(
            ChangeKind::Opened,
            1000,
            alert("done", Tlp::Green, &[]),
        ))
        .unwrap();
    assert_eq!(r.queued, 0);

    let (stop, shutdown) = watch::channel(false);
    let workers = outbox.spawn(shutdown);
    wait_for("the old queue delivered", || outbox.pending().unwrap() == 0).await;
    stop.send(true).unwrap();
    workers.join_all().await;
    let bodies: Vec<String> = rx
        .log
        .lock()
        .unwrap()
        .accepted
        .iter()
        .map(|(_, b)| b.clone())
        .collect();
    assert_eq!(
        bodies,
        vec![
            "{\"type\":\"alert.updated\",\"v\":1000}",
            "{\"type\":\"alert.updated\",\"v\":2000}"
        ],
        "in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_of_layout_2_moves_its_messages_into_lanes_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver(Behaviour::Always(204)).await;
    let outbox_dir = dir.path().join("outbox");
    std::fs::create_dir_all(&outbox_dir).unwrap();
    {
        // As layout 2 wrote it: for ncb-fr, a1 queued (head) and a2 parked; for ncb-de,
        // a1 queued (head). Shared tables, counts kept.
        let db = Database::create(outbox_dir.join("outbox.redb")).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut queue = w.open_table(QUEUE).unwrap();
            let mut heads = w.open_table(HEADS).unwrap();
            let mut by_alert = w.open_table(BY_ALERT).unwrap();
            let mut ids = w.open_table(IDS).unwrap();
            let mut parked = w.open_table(PARKED).unwrap();
            let mut counts = w.open_table(COUNTS).unwrap();
            let mut alerts = w.open_table(ALERTS).unwrap();
            for (seq, alert, recipient, park) in [
                (0u64, "a1", "ncb-fr", false),
                (1, "a2", "ncb-fr", true),
                (2, "a1", "ncb-de", false),
            ] {
                let id = webhook_id(alert, 1000, recipient, MessageKind::Alert);
                let mut q = serde_json::json!({
                    "webhook_id": id,
                    "recipient": recipient,
                    "alert_id": alert,
                    "version": 1000,
                    "kind": "alert",
                    "body": format!("{{\"type\":\"alert.opened\",\"id\":\"{alert}\"}}"),
                    "attempts": 0,
                    "next_attempt_ms": 0,
                });
                let role = if park {
                    q["parked"] = serde_json::json!({
                        "at_ms": 0, "reason": "exhausted", "detail": "retries exhausted"
                    });
                    parked.insert((recipient, seq), ()).unwrap();
                    2
                } else {
                    heads.insert((recipient, 0i64, seq), alert).unwrap();
                    1
                };
                queue
                    .insert(seq, serde_json::to_vec(&q).unwrap().as_slice())
                    .unwrap();
                by_alert.insert((alert, recipient, seq), role).unwrap();
                ids.insert(id.as_str(), seq).unwrap();
                let state = serde_json::json!({
                    "version": 1000,
                    "marking": {"tlp": "GREEN", "owner": "partner-x", "sharing": []},
                    "retracted": false,
                    "reached": [],
                    "retracted_to": [],
                });
                alerts
                    .insert(alert, serde_json::to_vec(&state).unwrap().as_slice())
                    .unwrap();
            }
            counts.insert("ncb-fr", (1, 1)).unwrap();
            counts.insert("ncb-de", (1, 0)).unwrap();
            let mut meta = w.open_table(META).unwrap();
            meta.insert("queue_seq", 3).unwrap();
            meta.insert("layout", 2).unwrap();
        }
        w.commit().unwrap();
    }

    // Only ncb-fr is subscribed now: ncb-de's message waits for its endpoint to return.
    let subs = subscriptions(dir.path(), &[("ncb-fr", &rx.url)]);
    let outbox = Outbox::open(&outbox_dir, subs, fast_config()).unwrap();
    assert_eq!(outbox.pending().unwrap(), 1);
    assert_eq!(
        outbox
            .parked_counts()
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        vec![("ncb-fr".to_string(), 1)]
    );
    let parked = outbox.parked(None).unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].alert_id, "a2");
    // a1's messages, in both lanes, are found by a retraction and cancelled.
    assert_eq!(outbox.alert_footprint("a1").unwrap().messages, 2);
    let r = outbox
        .enqueue(&change(
            ChangeKind::Retracted,
            2000,
            alert("a1", Tlp::Green, &[]),
        ))
        .unwrap();
    assert_eq!(r.cancelled, 2, "{r:?}");
    assert_eq!(outbox.pending().unwrap(), 0);
    assert_eq!(outbox.alert_footprint("a1").unwrap().messages, 0);
    // The parked message goes out once re-queued.
    outbox.requeue_parked(Some("ncb-fr"), "test").unwrap();
    let (stop, shutdown) = watch::channel(false);
    let workers = outbox.spawn(shutdown);
    wait_for("the parked message delivered", || {
        outbox.pending().unwrap() == 0 && !rx.log.lock().unwrap().accepted.is_empty()
    })
    .await;
    stop.send(true).unwrap();
    workers.join_all().await;
    let bodies: Vec<String> = rx
        .log
        .lock()
        .unwrap()
        .accepted
        .iter()
        .map(|(_, b)| b.clone())
        .collect();
    assert_eq!(bodies, vec!["{\"type\":\"alert.opened\",\"id\":\"a2\"}"]);
}
