//! Partner feedback: own indicators only, aggregated, above the threshold, as
//! STIX 2.1 sightings without victim identities — and delivered signed over HTTP.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

mod common;

use common::*;
use delivery::Subscriptions;
use delivery::feedback::Sightings;
use delivery::outbox::Outbox;
use schemas::{ChangeKind, Tlp};
use tokio::sync::watch;

fn partner_subs(dir: &std::path::Path, url: &str) -> Subscriptions {
    std::fs::write(dir.join("key"), "test-pseudonym-key-0001").unwrap();
    std::fs::write(dir.join("hook.whsec"), SECRET).unwrap();
    let toml = format!(
        "pseudonym_key = {{ secret_file = \"key\" }}\n\
         [[partner]]\nid = \"partner-x\"\nfeedback_endpoint = \"{url}\"\n\
         secret_file = \"hook.whsec\"\nfeedback_min_count = 5\n"
    );
    Subscriptions::parse(&toml, dir).unwrap()
}

fn scenario() -> Sightings {
    let mut s = Sightings::default();
    // Two alerts on the same partner-x indicator (3 + 4 = 7 sightings, FR and DE).
    let mut a = alert("a1", Tlp::Amber, &[]);
    a.key = "ind-x1".into();
    a.indicator.id = "indicator--11111111-1111-4111-8111-111111111111".into();
    a.sightings = 3;
    s.observe(&change(ChangeKind::Opened, 1000, a.clone()));
    let mut b = a.clone();
    b.id = "a2".into();
    b.sightings = 4;
    b.countries = vec!["DE".into()];
    b.last_seen = schemas::Timestamp::from_second(1_790_000_500).unwrap();
    s.observe(&change(ChangeKind::Opened, 1000, b));
    // Below the threshold.
    let mut c = alert("a3", Tlp::Green, &[]);
    c.indicator.id = "ind-x2".into();
    c.sightings = 2;
    s.observe(&change(ChangeKind::Opened, 1000, c));
    // Another partner's indicator.
    let mut d = alert("a4", Tlp::Green, &[]);
    d.indicator.source_id = "partner-y".into();
    d.marking.owner = "partner-y".into();
    d.sightings = 50;
    s.observe(&change(ChangeKind::Opened, 1000, d));
    // partner-x's indicator joined with another owner's AMBER+STRICT input: not fed back.
    let mut e = alert("a5", Tlp::AmberStrict, &[]);
    e.indicator.id = "ind-x3".into();
    e.marking.owner = "org-b+partner-x".into();
    e.sightings = 50;
    s.observe(&change(ChangeKind::Opened, 1000, e));
    s
}

#[test]
fn feedback_is_own_indicators_aggregated_above_threshold_without_victims() {
    let dir = tempfile::tempdir().unwrap();
    let subs = partner_subs(dir.path(), "http://127.0.0.1:9/unused");
    let p = &subs.partners[0];
    let s = scenario();
    let aggs = s.aggregates(p, &subs.policy);
    assert_eq!(aggs.len(), 1, "{aggs:?}");
    assert_eq!(aggs[0].count, 7);
    assert_eq!(
        aggs[0].countries.iter().collect::<Vec<_>>(),
        vec!["DE", "FR"]
    );

    let bundle = s.bundle(p, &subs.policy, 5000).unwrap();
    assert_eq!(
        bundle,
        s.bundle(p, &subs.policy, 5000).unwrap(),
        "deterministic"
    );
    assert!(!bundle.contains("10.200.0.7") && !bundle.contains("victim@mail.example"));
    assert!(!bundle.contains("ev-1"), "no event ids");
    let v: serde_json::Value = serde_json::from_str(&bundle).unwrap();
    assert_eq!(v["type"], "bundle");
    let objects = v["objects"].as_array().unwrap();
    let sighting = objects.iter().find(|o| o["type"] == "sighting").unwrap();
    assert_eq!(sighting["spec_version"], "2.1");
    assert_eq!(sighting["count"], 7);
    assert_eq!(
        sighting["sighting_of_ref"],
        "indicator--11111111-1111-4111-8111-111111111111"
    );
    assert_eq!(sighting["first_seen"], "2026-09-21T14:13:30.000Z");
    assert_eq!(sighting["last_seen"], "2026-09-21T14:21:40.000Z");
    let refs = sighting["where_sighted_refs"].as_array().unwrap();
    assert_eq!(refs.len(), 2);
    for r in refs {
        let loc = objects.iter().find(|o| o["id"] == *r).unwrap();
        assert_eq!(loc["type"], "location");
    }

    // A retraction removes the alert's sightings: 4 < 5, no feedback.
    let mut s = s;
    s.observe(&change(
        ChangeKind::Retracted,
        2000,
        alert("a1", Tlp::Amber, &[]),
    ));
    assert!(s.bundle(p, &subs.policy, 6000).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_delivered_signed_once_per_period() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver(Behaviour::FailFirst(1, 503)).await;
    let subs = partner_subs(dir.path(), &rx.url);
    let outbox = Outbox::open(&dir.path().join("outbox"), subs, fast_config()).unwrap();
    let s = scenario();
    assert_eq!(outbox.enqueue_feedback(&s, 5000).unwrap(), 1);
    assert_eq!(
        outbox.enqueue_feedback(&s, 5000).unwrap(),
        0,
        "same period: nothing new"
    );
    let (stop, shutdown) = watch::channel(false);
    let workers = outbox.spawn(shutdown);
    wait_for("feedback delivered", || outbox.pending().unwrap() == 0).await;
    stop.send(true).unwrap();
    workers.join_all().await;
    let log = rx.log.lock().unwrap();
    assert_eq!(log.requests.len(), 2);
    assert!(log.requests.iter().all(|(_, _, ok)| *ok));
    assert_eq!(
        log.requests[0].0, log.requests[1].0,
        "same webhook id on retry"
    );
    let body: serde_json::Value = serde_json::from_str(&log.accepted[0].1).unwrap();
    assert_eq!(body["type"], "sightings.feedback");
    assert_eq!(body["data"]["type"], "bundle");
}

#[test]
fn a_drill_feeds_back_to_drill_partners_only_and_live_operations_to_live_ones_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "test-pseudonym-key-0001").unwrap();
    std::fs::write(dir.path().join("hook.whsec"), SECRET).unwrap();
    let partner = |drill: bool| {
        format!(
            "[[partner]]\nid = \"partner-x\"\nfeedback_endpoint = \"http://127.0.0.1:9/p\"\n\
             secret_file = \"hook.whsec\"\nfeedback_min_count = 5\ndrill = {drill}\n"
        )
    };
    let subs = |drill: bool| {
        let toml = format!(
            "pseudonym_key = {{ secret_file = \"key\" }}\n{}",
            partner(drill)
        );
        Subscriptions::parse(&toml, dir.path()).unwrap()
    };
    let drill_config = || delivery::OutboxConfig {
        drill: Some("ex".into()),
        ..fast_config()
    };
    let s = scenario();
    let cases = [
        ("live-live", subs(false), fast_config(), 1),
        ("live-drill", subs(true), fast_config(), 0),
        ("drill-drill", subs(true), drill_config(), 1),
        ("drill-live", subs(false), drill_config(), 0),
    ];
    for (name, subs, config, want) in cases {
        let outbox = Outbox::open(&dir.path().join(name), subs, config).unwrap();
        assert_eq!(outbox.enqueue_feedback(&s, 5000).unwrap(), want, "{name}");
    }
}
