//! An outbox written by the previous release (a queue table without indexes, finished
//! messages keyed by webhook id) opens with its indexes built: what was queued goes out,
//! and what was finished is not queued again.

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
