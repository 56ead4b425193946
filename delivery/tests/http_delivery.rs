//! The outbox against real HTTP receivers on 127.0.0.1 ephemeral ports, named
//! after the failure they survive. The retry schedule is scaled down (same
//! shape, same code path) so the tests run in seconds.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use delivery::{Outbox, Outcome};
use schemas::Tlp;
use schemas::{Alert, ChangeKind};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_for_first_attempts_gets_everything_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver(Behaviour::FailFirst(7, 503)).await;
    let subs = subscriptions(dir.path(), &[("ncb-fr", &rx.url)]);
    let outbox = Outbox::open(&dir.path().join("outbox"), subs, fast_config()).unwrap();
    for i in 0..5 {
        let id = format!("a{i}");
        outbox
            .enqueue(&change(
                ChangeKind::Opened,
                1000,
                alert(&id, Tlp::Green, &[]),
            ))
            .unwrap();
        outbox
            .enqueue(&change(
                ChangeKind::Updated,
                2000,
                alert(&id, Tlp::Green, &[]),
            ))
            .unwrap();
        outbox
            .enqueue(&change(
                ChangeKind::Updated,
                3000,
                alert(&id, Tlp::Green, &[]),
            ))
            .unwrap();
    }
    let (stop, shutdown) = watch::channel(false);
    let workers = outbox.spawn(shutdown);
    wait_for("every message delivered", || outbox.pending().unwrap() == 0).await;
    stop.send(true).unwrap();
    workers.join_all().await;

    let log = rx.log.lock().unwrap();
    assert!(
        log.requests.len() > 15,
        "the first attempts failed and were retried"
    );
    assert!(log.requests.iter().all(|(_, _, sig_ok)| *sig_ok));
    let by_alert = versions_by_alert(&log);
    assert_eq!(by_alert.len(), 5);
    for (id, versions) in &by_alert {
        assert_eq!(
            versions,
            &vec![1000, 2000, 3000],
            "alert {id} out of order or incomplete"
        );
    }
    // A retried message keeps its webhook id and body.
    let accepted: BTreeSet<&(String, String)> = log.accepted.iter().collect();
    for (id, body, _) in &log.requests {
        assert!(accepted.contains(&(id.clone(), body.clone())));
    }
    let outcomes: Vec<Outcome> = outbox.log().unwrap().iter().map(|e| e.outcome).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Retry).count(), 7);
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Outcome::Delivered)
            .count(),
        15
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_on_500_not_on_400() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = receiver(Behaviour::FailFirst(2, 500)).await;
    let rejecting = receiver(Behaviour::Always(400)).await;
    let subs = subscriptions(
        dir.path(),
        &[("ncb-fr", &flaky.url), ("ncb-de", &rejecting.url)],
    );
    let outbox = Outbox::open(&dir.path().join("outbox"), subs, fast_config()).unwrap();
    outbox
        .enqueue(&change(
            ChangeKind::Opened,
            1000,
            alert("a1", Tlp::Green, &[]),
        ))
        .unwrap();
    let (stop, shutdown) = watch::channel(false);
    let workers = outbox.spawn(shutdown);
    wait_for("both messages settled", || outbox.pending().unwrap() == 0).await;
    stop.send(true).unwrap();
    workers.join_all().await;

    assert_eq!(flaky.log.lock().unwrap().requests.len(), 3);
    assert_eq!(flaky.log.lock().unwrap().accepted.len(), 1);
    assert_eq!(
        rejecting.log.lock().unwrap().requests.len(),
        1,
        "400 is not retried"
    );
    let log = outbox.log().unwrap();
    let de: Vec<_> = log.iter().filter(|e| e.recipient == "ncb-de").collect();
    assert!(
        de.iter()
            .any(|e| e.outcome == Outcome::Failed && e.status == Some(400))
    );
    let fr: Vec<_> = log
        .iter()
        .filter(|e| e.recipient == "ncb-fr" && e.attempt > 0)
        .collect();
    assert_eq!(
        fr.iter().map(|e| (e.attempt, e.status)).collect::<Vec<_>>(),
        vec![(1, Some(500)), (2, Some(500)), (3, Some(204))],
        "delivery log has one line per attempt with its status"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_receiver_does_not_slow_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let hanging = receiver(Behaviour::Hang).await;
    let healthy = receiver(Behaviour::Always(204)).await;
    let subs = subscriptions(
        dir.path(),
        &[("ncb-ar", &hanging.url), ("ncb-fr", &healthy.url)],
    );
    let outbox = Outbox::open(&dir.path().join("outbox"), subs, fast_config()).unwrap();
    for i in 0..30 {
        outbox
            .enqueue(&change(
                ChangeKind::Opened,
                1000,
                alert(&format!("a{i}"), Tlp::Green, &[]),
            ))
            .unwrap();
    }
    let (stop, shutdown) = watch::channel(false);
    let workers = outbox.spawn(shutdown);
    // The receiver's log fills before the outbox records the last responses: wait for both.
    wait_for(
        "the healthy receiver got all 30 and the outbox settled them",
        || healthy.log.lock().unwrap().accepted.len() == 30 && outbox.pending().unwrap() <= 30,
    )
    .await;
    // Meanwhile the hanging one holds its in-flight requests (its concurrency limit) and nothing completed.
    {
        let h = hanging.log.lock().unwrap();
        assert!(
            !h.requests.is_empty() && h.requests.len() <= 4,
            "{} requests",
            h.requests.len()
        );
        assert!(h.accepted.is_empty());
    }
    assert_eq!(
        outbox.pending().unwrap(),
        30,
        "the hanging bureau's 30 are still queued"
    );
    stop.send(true).unwrap();
    workers.join_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_410_disables_the_endpoint_and_raises_an_operator_alert() {
    let dir = tempfile::tempdir().unwrap();
    let gone = receiver(Behaviour::Always(410)).await;
    let subs = subscriptions(dir.path(), &[("ncb-de", &gone.url)]);
    let outbox = Outbox::open(&dir.path().join("outbox"), subs, fast_config()).unwrap();
    for i in 0..3 {
        outbox
            .enqueue(&change(
                ChangeKind::Opened,
                1000,
                alert(&format!("a{i}"), Tlp::Green, &[]),
            ))
            .unwrap();
    }
    let (_stop, shutdown) = watch::channel(false);
    let workers = outbox.spawn(shutdown);
    // The worker stops by itself once its endpoint is disabled.
    workers.join_all().await;
    let alerts = outbox.operator_alerts().unwrap();
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].detail.contains("410"));
    assert_eq!(
        outbox.pending().unwrap(),
        0,
        "a disabled endpoint's messages are not pending"
    );
    assert!(gone.log.lock().unwrap().requests.len() <= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_429_honours_retry_after_then_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver(Behaviour::FailFirst(1, 429)).await;
    let subs = subscriptions(dir.path(), &[("ncb-fr", &rx.url)]);
    let outbox = Outbox::open(&dir.path().join("outbox"), subs, fast_config()).unwrap();
    outbox
        .enqueue(&change(
            ChangeKind::Opened,
            1000,
            alert("a1", Tlp::Green, &[]),
        ))
        .unwrap();
    let (stop, shutdown) = watch::channel(false);
    let workers = outbox.spawn(shutdown);
    wait_for("delivered after the 429", || outbox.pending().unwrap() == 0).await;
    stop.send(true).unwrap();
    workers.join_all().await;
    let log = outbox.log().unwrap();
    let attempts: Vec<_> = log.iter().filter(|e| e.attempt > 0).collect();
    assert_eq!(attempts[0].status, Some(429));
    assert_eq!(attempts[0].outcome, Outcome::Retry);
    assert_eq!(attempts[1].outcome, Outcome::Delivered);
    // The receiver asked for `Retry-After: 1`; the schedule alone would have retried after ~20 ms.
    assert!(
        attempts[1].at_ms - attempts[0].at_ms >= 1000,
        "Retry-After not honoured: {} ms",
        attempts[1].at_ms - attempts[0].at_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowed_sharing_cancels_queued_and_retracts_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let fr = receiver(Behaviour::Always(204)).await;
    // DE refuses the alert itself but takes retractions. Switching it from 503 to 204
    // after v2 raced with a v1 retry still in flight, which DE then accepted.
    let de = receiver(Behaviour::RetractionsOnly(503)).await;
    let subs = subscriptions(dir.path(), &[("ncb-fr", &fr.url), ("ncb-de", &de.url)]);
    // DE's v1 must still be queued (retrying) when v2 arrives, however slow the machine:
    // a retry budget of ~10 s rather than fast_config's 0.6 s.
    let mut config = fast_config();
    config.retry.delays = [0u64, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120]
        .iter()
        .map(|&ms| Duration::from_millis(ms))
        .collect();
    let outbox = Outbox::open(&dir.path().join("outbox"), subs, config).unwrap();
    let (stop, shutdown) = watch::channel(false);
    let workers = outbox.spawn(shutdown);

    // v1: AMBER shared with both. FR gets it; DE is down and retrying.
    let v1 = outbox
        .enqueue(&change(
            ChangeKind::Opened,
            1000,
            alert("a1", Tlp::Amber, &["ncb-de", "ncb-fr"]),
        ))
        .unwrap();
    assert_eq!(v1.queued, 2);
    wait_for("FR got v1 and DE was tried", || {
        fr.log.lock().unwrap().accepted.len() == 1 && !de.log.lock().unwrap().requests.is_empty()
    })
    .await;

    // v2: the owner narrows the sharing list to FR. DE's queued v1 is cancelled, and DE,
    // which may have received it (an attempt was made), is told to delete it.
    let v2 = outbox
        .enqueue(&change(
            ChangeKind::Updated,
            2000,
            alert("a1", Tlp::Amber, &["ncb-fr"]),
        ))
        .unwrap();
    assert_eq!((v2.queued, v2.cancelled, v2.retractions), (1, 1, 1));
    wait_for("DE got the retraction, FR v2", || {
        de.log.lock().unwrap().accepted.len() == 1 && fr.log.lock().unwrap().accepted.len() == 2
    })
    .await;
    let de_msgs = accepted_messages(&de.log.lock().unwrap());
    assert_eq!(
        de_msgs,
        vec![("a1".to_string(), 2000, "alert.retracted".to_string())]
    );

    // v3: the owner revokes the indicator; the alert is retracted; FR is told.
    let v3 = outbox
        .enqueue(&change(
            ChangeKind::Retracted,
            3000,
            alert("a1", Tlp::Amber, &["ncb-fr"]),
        ))
        .unwrap();
    assert_eq!((v3.queued, v3.retractions), (0, 1));
    wait_for("FR got the retraction", || {
        fr.log.lock().unwrap().accepted.len() == 3
    })
    .await;
    let fr_msgs = accepted_messages(&fr.log.lock().unwrap());
    assert_eq!(
        fr_msgs
            .iter()
            .map(|(_, v, k)| (*v, k.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (1000, "alert.opened"),
            (2000, "alert.updated"),
            (3000, "alert.retracted")
        ]
    );
    // DE never received the alert itself.
    assert!(
        de.log
            .lock()
            .unwrap()
            .accepted
            .iter()
            .all(|(_, b)| b.contains("alert.retracted"))
    );

    // A stale or repeated change queues nothing.
    let again = outbox
        .enqueue(&change(
            ChangeKind::Updated,
            2000,
            alert("a1", Tlp::Amber, &["ncb-fr"]),
        ))
        .unwrap();
    assert!(again.stale);
    stop.send(true).unwrap();
    workers.join_all().await;
}

/// Queues a1 (GREEN) for DE while no worker runs, then enqueues `v2` of a1, which must
/// withhold DE: the queued message is cancelled, nothing is retracted, and once the
/// workers run DE receives only an unrelated alert.
async fn queued_then_withheld_is_never_attempted(v2: Alert) {
    let dir = tempfile::tempdir().unwrap();
    let de = receiver(Behaviour::Always(204)).await;
    let subs = subscriptions(dir.path(), &[("ncb-de", &de.url)]);
    let outbox = Outbox::open(&dir.path().join("outbox"), subs, fast_config()).unwrap();
    outbox
        .enqueue(&change(
            ChangeKind::Opened,
            1000,
            alert("a1", Tlp::Green, &[]),
        ))
        .unwrap();
    let r = outbox
        .enqueue(&change(ChangeKind::Updated, 2000, v2))
        .unwrap();
    assert_eq!(
        (r.queued, r.cancelled, r.retractions, r.withheld),
        (0, 1, 0, 1)
    );
    let (stop, shutdown) = watch::channel(false);
    let workers = outbox.spawn(shutdown);
    // Give the worker a chance to (wrongly) send something, then check it did not.
    outbox
        .enqueue(&change(
            ChangeKind::Opened,
            1000,
            alert("b1", Tlp::Green, &[]),
        ))
        .unwrap();
    wait_for("the unrelated alert delivered", || {
        de.log.lock().unwrap().accepted.len() == 1
    })
    .await;
    stop.send(true).unwrap();
    workers.join_all().await;
    assert_eq!(
        accepted_messages(&de.log.lock().unwrap()),
        vec![("b1".to_string(), 1000, "alert.opened".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raised_tlp_cancels_queued_without_attempt_and_no_retraction() {
    queued_then_withheld_is_never_attempted(alert("a1", Tlp::Red, &["ncb-fr"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contributing_sources_marking_withholds_and_cancels_queued() {
    // Version 2 lists a second source whose TLP:RED indicator names only France. The
    // alert's own marking still reads GREEN, but every contributing marking must allow.
    let mut v2 = alert("a1", Tlp::Green, &[]);
    v2.provenance.sources.push(schemas::Contributor {
        kind: schemas::ContributorKind::Partner,
        id: "partner-y".to_string(),
        indicator_id: "ind-y".to_string(),
        confidence: 90,
        reported: v2.first_seen,
        marking: schemas::Marking {
            tlp: Tlp::Red,
            owner: "partner-y".to_string(),
            sharing: vec!["ncb-fr".to_string()],
        },
    });
    queued_then_withheld_is_never_attempted(v2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_outbox_names_its_drill_in_a_header_and_the_payload_says_drill() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver(Behaviour::Always(204)).await;
    let live_subs = subscriptions(dir.path(), &[("ncb-fr", &rx.url)]);
    let toml = format!(
        "pseudonym_key = {{ secret_file = \"key\" }}\n[[bureau]]\nid = \"ncb-fr-drill\"\ncountry = \"FR\"\n\
         endpoint = \"{}\"\nsecret_file = \"hook.whsec\"\nclearance = \"AMBER\"\npersonal_data = false\ndrill = true\n",
        rx.url
    );
    let drill_subs = delivery::Subscriptions::parse(&toml, dir.path()).unwrap();
    let config = delivery::OutboxConfig {
        drill: Some("ex-7".into()),
        ..fast_config()
    };
    let drill_box = Outbox::open(&dir.path().join("drill"), drill_subs, config).unwrap();
    let live_box = Outbox::open(&dir.path().join("live"), live_subs, fast_config()).unwrap();
    let mut drill_alert = alert("d1", Tlp::Green, &[]);
    drill_alert.drill = true;
    // A drill alert goes to the drill endpoint only; a live alert to the live one only.
    assert_eq!(
        drill_box
            .enqueue(&change(ChangeKind::Opened, 1000, drill_alert.clone()))
            .unwrap()
            .queued,
        1
    );
    assert_eq!(
        drill_box
            .enqueue(&change(
                ChangeKind::Opened,
                1000,
                alert("l1", Tlp::Green, &[])
            ))
            .unwrap()
            .queued,
        0
    );
    assert_eq!(
        live_box
            .enqueue(&change(ChangeKind::Opened, 1000, drill_alert))
            .unwrap()
            .queued,
        0
    );
    assert_eq!(
        live_box
            .enqueue(&change(
                ChangeKind::Opened,
                1000,
                alert("l1", Tlp::Green, &[])
            ))
            .unwrap()
            .queued,
        1
    );
    for outbox in [&drill_box, &live_box] {
        let (stop, shutdown) = watch::channel(false);
        let workers = outbox.spawn(shutdown);
        wait_for("delivered", || outbox.pending().unwrap() == 0).await;
        stop.send(true).unwrap();
        workers.join_all().await;
    }
    let log = rx.log.lock().unwrap();
    assert_eq!(log.accepted.len(), 2);
    let by_id: Vec<(Option<String>, bool)> = log
        .requests
        .iter()
        .zip(&log.drill_headers)
        .map(|((_, body, _), h)| (h.clone(), body.contains("\"drill\":true")))
        .collect();
    assert!(by_id.contains(&(Some("ex-7".into()), true)), "{by_id:?}");
    assert!(by_id.contains(&(None, false)), "{by_id:?}");
}
