//! Produce and consume through rdkafka against the real Kafka-compatible broker.
//!
//! `deploy/test.sh` starts tansu (see `deploy/kafka/start-broker.sh`) and exports its address
//! as `FUSION_KAFKA_BOOTSTRAP`. Without that variable the test fails rather than passing
//! silently, since a skipped broker test would look the same as a working one.
//!
//! What it checks is what Fusion's Kafka source relies on: keyed records from an idempotent
//! producer all arrive once with their payloads, and a consumer group that commits after
//! processing resumes exactly at its committed offsets.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::Offset;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use tokio::time::{Instant, timeout};

const PARTITIONS: i32 = 3;
const FIRST_BATCH: usize = 500;
const SECOND_BATCH: usize = 10;
/// Upper bound for the whole test; a healthy run takes a few seconds.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);
/// Upper bound for one step (create topic, a batch of deliveries, reading a batch, a commit).
const STEP_TIMEOUT: Duration = Duration::from_secs(45);
/// How long the resumed consumer keeps polling after its 10 records to catch extra ones.
const QUIET_PERIOD: Duration = Duration::from_secs(3);

fn bootstrap() -> String {
    match std::env::var("FUSION_KAFKA_BOOTSTRAP") {
        Ok(address) if !address.trim().is_empty() => address,
        _ => panic!(
            "FUSION_KAFKA_BOOTSTRAP is not set. This test needs the real broker: run it through \
             deploy/test.sh, or start one with `deploy/kafka/start-broker.sh 19092` and run \
             `FUSION_KAFKA_BOOTSTRAP=127.0.0.1:19092 cargo test --test kafka_broker`"
        ),
    }
}

/// A suffix that keeps topics and groups of different runs apart on a reused broker.
fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("system clock before 1970")
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

fn key(index: usize) -> String {
    format!("event-{index:05}")
}

fn payload(index: usize) -> Value {
    json!({
        "event_id": key(index),
        "seq": index,
        "kind": "login_failure",
        "host": format!("host-{}", index % 7),
    })
}

/// Runs `future` with a bound, turning a hang into a failure that names the step.
async fn bounded<T>(what: &str, limit: Duration, future: impl Future<Output = T>) -> T {
    match timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Runs a blocking rdkafka call on its own thread with a bound. A plain thread (not
/// `spawn_blocking`) is used so that a call that never returns cannot keep the runtime from
/// shutting down after the failure is reported.
async fn blocking<T: Send + 'static>(
    what: &str,
    limit: Duration,
    call: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        // The receiver is gone only when the caller already failed on the timeout.
        let _ = done.send(call());
    });
    bounded(what, limit, result)
        .await
        .unwrap_or_else(|_| panic!("{what}: worker thread panicked"))
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // Retries after a lost acknowledgement must not duplicate or reorder records; this is
        // the producer mode Fusion uses (tansu supports it, but not transactions).
        .set("enable.idempotence", "true")
        // Give up on a record after 30 s instead of the 5 min default, so a broken broker
        // fails the test inside its timeout instead of leaving deliveries pending.
        .set("message.timeout.ms", "30000")
        .create()
        .expect("creating the producer")
}

fn consumer(bootstrap: &str, group: &str) -> StreamConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // A group of this run only, so no earlier committed offsets exist for it.
        .set("group.id", group)
        // Offsets are committed by the test after it has checked the records, the
        // commit-after-processing pattern whose resume point is under test.
        .set("enable.auto.commit", "false")
        // The fresh group has no committed offsets; start at the beginning so records
        // produced before the group joined are read.
        .set("auto.offset.reset", "earliest")
        // If a leaving member's LeaveGroup is lost, the group rebalances after 10 s rather
        // than the 45 s default, well inside the step timeout.
        .set("session.timeout.ms", "10000")
        .create()
        .expect("creating the consumer")
}

async fn create_topic(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("creating the admin client");
    let options = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(20)))
        .operation_timeout(Some(Duration::from_secs(20)));
    // Replication is always 1: tansu is a single broker.
    let new_topic = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    let results = bounded(
        "creating the topic",
        STEP_TIMEOUT,
        admin.create_topics(&[new_topic], &options),
    )
    .await
    .expect("CreateTopics request");
    assert_eq!(results.len(), 1, "one result per requested topic");
    for result in results {
        if let Err((name, code)) = result {
            panic!("creating topic {name} failed: {code:?}");
        }
    }
}

/// Produces records `range` with their keys and payloads; returns the partitions they went to.
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    range: std::ops::Range<usize>,
) -> BTreeSet<i32> {
    // Enqueue everything first and then wait, so the batch is pipelined like real traffic.
    let mut pending = Vec::with_capacity(range.len());
    for index in range {
        let key = key(index);
        let body = payload(index).to_string();
        let record = FutureRecord::to(topic).key(&key).payload(&body);
        match producer.send_result(record) {
            Ok(delivery) => pending.push((index, delivery)),
            Err((error, _)) => panic!("enqueueing record {index} failed: {error}"),
        }
    }
    let mut partitions = BTreeSet::new();
    let deadline = Instant::now() + STEP_TIMEOUT;
    for (index, delivery) in pending {
        match timeout(deadline.saturating_duration_since(Instant::now()), delivery).await {
            Ok(Ok(Ok(delivery))) => {
                partitions.insert(delivery.partition);
            }
            Ok(Ok(Err((error, _)))) => panic!("record {index} was not delivered: {error}"),
            Ok(Err(_canceled)) => panic!("producer dropped the delivery of record {index}"),
            Err(_elapsed) => {
                panic!("delivery of record {index} not reported within {STEP_TIMEOUT:?}")
            }
        }
    }
    partitions
}

/// One consumed record, detached from the consumer's buffer.
#[derive(Debug)]
struct Received {
    key: String,
    payload: Value,
    partition: i32,
    offset: i64,
}

/// Receives exactly `count` records, then keeps polling for `linger` to catch extra ones.
/// Errors from `recv` are transient (the client reconnects on its own), so they are noted and
/// the loop goes on until the deadline.
async fn receive(consumer: &StreamConsumer, count: usize, linger: Duration) -> Vec<Received> {
    let mut received = Vec::new();
    let mut last_error = None;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut stop_at = deadline;
    loop {
        let remaining = stop_at.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        match timeout(remaining, consumer.recv()).await {
            Err(_) => break,
            Ok(Err(error)) => last_error = Some(error),
            Ok(Ok(message)) => {
                let key = message
                    .key()
                    .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                    .unwrap_or_else(|| {
                        panic!(
                            "record without key at {}@{}",
                            message.partition(),
                            message.offset()
                        )
                    });
                let payload = serde_json::from_slice(message.payload().unwrap_or_default())
                    .unwrap_or_else(|error| panic!("payload of {key} is not JSON: {error}"));
                received.push(Received {
                    key,
                    payload,
                    partition: message.partition(),
                    offset: message.offset(),
                });
                if received.len() == count {
                    stop_at = Instant::now() + linger;
                }
            }
        }
    }
    assert!(
        received.len() >= count,
        "received {} of {count} records within {STEP_TIMEOUT:?} (last consumer error: {last_error:?})",
        received.len()
    );
    received
}

/// Checks that `received` holds each record of `expected` exactly once with its payload.
fn assert_exactly(received: &[Received], expected: std::ops::Range<usize>) {
    let mut by_key: BTreeMap<&str, &Received> = BTreeMap::new();
    for record in received {
        if let Some(earlier) = by_key.insert(&record.key, record) {
            panic!(
                "{} received twice: {}@{} and {}@{}",
                record.key, earlier.partition, earlier.offset, record.partition, record.offset
            );
        }
    }
    let expected_keys: BTreeSet<String> = expected.clone().map(key).collect();
    let unexpected: Vec<&str> = by_key
        .keys()
        .copied()
        .filter(|key| !expected_keys.contains(*key))
        .collect();
    assert!(unexpected.is_empty(), "unexpected records: {unexpected:?}");
    for index in expected {
        let key = key(index);
        let record = by_key
            .get(key.as_str())
            .unwrap_or_else(|| panic!("record {key} never arrived"));
        assert_eq!(record.payload, payload(index), "payload of {key}");
    }
}

/// Drops a consumer (which leaves the group) with a bound: a close can hang when the broker
/// misbehaves, and that must fail the test rather than stall it.
async fn close(consumer: Arc<StreamConsumer>) {
    blocking("closing the consumer", STEP_TIMEOUT, move || drop(consumer)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_records_arrive_once_and_group_resumes_from_committed_offsets() {
    let bootstrap = bootstrap();
    bounded("the broker test", TEST_TIMEOUT, run(bootstrap)).await;
}

async fn run(bootstrap: String) {
    let suffix = unique_suffix();
    let topic = format!("fusion-it-{suffix}");
    let group = format!("fusion-it-group-{suffix}");

    create_topic(&bootstrap, &topic).await;
    let producer = producer(&bootstrap);
    let partitions = produce(&producer, &topic, 0..FIRST_BATCH).await;
    assert_eq!(
        partitions,
        (0..PARTITIONS).collect::<BTreeSet<_>>(),
        "keyed records spread over all {PARTITIONS} partitions of the new topic"
    );

    // First member of the group: reads everything from the beginning, then commits.
    let first = Arc::new(consumer(&bootstrap, &group));
    first.subscribe(&[&topic]).expect("subscribing");
    let received = receive(&first, FIRST_BATCH, Duration::ZERO).await;
    assert_exactly(&received, 0..FIRST_BATCH);

    let committing = Arc::clone(&first);
    blocking("synchronous commit", STEP_TIMEOUT, move || {
        committing.commit_consumer_state(CommitMode::Sync)
    })
    .await
    .expect("committing the consumed offsets");

    // The group's committed offset of every partition is now its end: all 500 were processed.
    // The committed list is reduced to plain offsets inside the closure: a live
    // `TopicPartitionList` from `committed()` holds librdkafka partition handles, and while one
    // exists, dropping the consumer blocks forever in librdkafka's destroy.
    let checking = Arc::clone(&first);
    let topic_name = topic.clone();
    let (committed, ends) = blocking("reading committed offsets", STEP_TIMEOUT, move || {
        let list = checking
            .committed(Duration::from_secs(20))
            .expect("fetching committed offsets");
        let committed: Vec<Option<Offset>> = (0..PARTITIONS)
            .map(|partition| {
                list.find_partition(&topic_name, partition)
                    .map(|element| element.offset())
            })
            .collect();
        let ends: Vec<Offset> = (0..PARTITIONS)
            .map(|partition| {
                let (_low, high) = checking
                    .fetch_watermarks(&topic_name, partition, Duration::from_secs(20))
                    .expect("fetching watermarks");
                Offset::Offset(high)
            })
            .collect();
        (committed, ends)
    })
    .await;
    for partition in 0..PARTITIONS {
        let index = partition as usize;
        assert_eq!(
            committed[index],
            Some(ends[index]),
            "committed offset of partition {partition} is its end"
        );
    }
    close(first).await;

    // Ten more records, then a new member of the same group: it must start at the committed
    // offsets, so it sees exactly the ten and none of the first 500 again.
    produce(&producer, &topic, FIRST_BATCH..FIRST_BATCH + SECOND_BATCH).await;
    let second = Arc::new(consumer(&bootstrap, &group));
    second.subscribe(&[&topic]).expect("subscribing");
    let resumed = receive(&second, SECOND_BATCH, QUIET_PERIOD).await;
    assert_exactly(&resumed, FIRST_BATCH..FIRST_BATCH + SECOND_BATCH);
    close(second).await;
}
