//! The desk API end to end: the real `fusion run` on the embedded scenario with
//! `--desk-addr 127.0.0.1:0`, officers added and revoked with `fusion officer`, and
//! requests over HTTP. Every wait is on a condition, with a generous deadline.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // A test that cannot unwrap has failed.

mod desk_common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use desk_common::{Fusion, wait_for};
use schemas::desk::{ActionOutcome, DeskEvent, HistoryEvent};
use serde_json::{Value, json};

#[test]
fn missing_wrong_and_revoked_tokens_are_refused() {
    let f = Fusion::start(&[]);
    // Operators' probes need no token.
    assert_eq!(f.get("/healthz", None).0, 200);
    wait_for("ready", Duration::from_secs(60), || {
        f.get("/readyz", None).0 == 200
    });
    assert!(
        f.get("/metrics", None)
            .1
            .as_str()
            .unwrap_or_default()
            .contains("fusion_desk_requests_total")
    );

    let (status, body) = f.get("/api/alerts", None);
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(f.get("/api/alerts", Some("fdk_0000")).0, 401);
    assert_eq!(f.get("/api/events", Some("fdk_0000")).0, 401);
    assert_eq!(f.post("/api/handover/accept", Some("nope"), None).0, 401);

    let token = f.officer("alice", "lyon");
    let (status, session) = f.get("/api/session", Some(&token));
    assert_eq!(status, 200);
    assert_eq!(
        session["officer"],
        json!({"name": "alice", "center": "Lyon"})
    );
    assert_eq!(session["drill"], Value::Null);
    assert_eq!(f.get("/api/alerts", Some(&token)).0, 200);

    // A stream opened before the revocation ends with it.
    let stream = {
        let client = ops_tui::Client::new(&f.url, &token).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let (open_tx, open_rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let ended = client.stream(None, |_| {
                let _ = open_tx.try_send(());
                true
            });
            let _ = tx.send(ended.map_err(|e| e.to_string()));
        });
        // Revoked only once the stream is open (its first event, a snapshot or a health
        // tick, has arrived): a stream not yet open would be refused, not ended.
        open_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the stream opens");
        rx
    };
    f.revoke("alice");
    let ended = stream
        .recv_timeout(Duration::from_secs(60))
        .expect("the stream ends");
    let ended = ended.unwrap_err();
    assert!(ended.contains("closed the stream"), "{ended}");
    let (status, body) = f.get("/api/alerts", Some(&token));
    assert_eq!(status, 401, "{body}");
    assert!(body["message"].as_str().unwrap().contains("revoked"));
    // Not even the stream, and not for actions.
    assert_eq!(f.get("/api/events", Some(&token)).0, 401);
}

#[test]
fn another_centers_officer_gets_the_dataflows_not_owner() {
    let f = Fusion::start(&[]);
    let owner = f.duty_center();
    let other = f.non_owner_center();
    let wei = f.officer("wei", &other);
    let alert = f.wait_open_alert(&wei);

    let (status, body) = f.post(
        &format!("/api/alerts/{alert}/acknowledge"),
        Some(&wei),
        None,
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "not_owner");
    assert_eq!(body["owner"], owner.as_str());
    let action_id = body["action_id"].as_str().unwrap().to_string();

    // The rejection is the dataflow's: routing's output has it, with this action.
    let rejected = f.routing_out_rejections();
    assert!(
        rejected
            .iter()
            .any(|r| r["action"]["action_id"] == action_id.as_str()
                && r["code"] == "not_owner"
                && r["action"]["center"] == other.as_str()),
        "routing-out: {rejected:?}"
    );
    // And the desk recorded it: the action and the alert's history.
    let (_, record) = f.get(&format!("/api/actions/{action_id}"), Some(&wei));
    assert_eq!(record["outcome"], "rejected");
    assert_eq!(record["code"], "not_owner");
    let (_, detail) = f.get(&format!("/api/alerts/{alert}"), Some(&wei));
    let history: Vec<schemas::desk::HistoryEntry> =
        serde_json::from_value(detail["history"].clone()).unwrap();
    assert!(history.iter().any(|h| matches!(&h.event,
        HistoryEvent::Action { action_id: a, officer_id, center, outcome: ActionOutcome::Rejected { code, .. }, .. }
            if *a == action_id && officer_id == "wei" && *center == other && code == "not_owner")));
    // Nothing changed: still open.
    assert_eq!(detail["item"]["state"], "open");
    // Escalation is open to every center.
    let (status, body) = f.post(&format!("/api/alerts/{alert}/escalate"), Some(&wei), None);
    assert_eq!(status, 202, "{body}");
}

#[test]
fn accepted_actions_are_in_the_alerts_history_with_officer_and_center() {
    let f = Fusion::start(&[]);
    let owner = f.duty_center();
    let alice = f.officer("alice", &owner);
    let alert = f.wait_open_alert(&alice);

    for (verb, body) in [
        ("acknowledge", None),
        ("note", Some(json!({"text": "bureau FR informed"}))),
        ("assign", Some(json!({"officer_id": "bob"}))),
    ] {
        let (status, receipt) = f.post(&format!("/api/alerts/{alert}/{verb}"), Some(&alice), body);
        assert_eq!(status, 202, "{verb}: {receipt}");
        let id = receipt["action_id"].as_str().unwrap().to_string();
        wait_for(&format!("{verb} accepted"), Duration::from_secs(60), || {
            f.get(&format!("/api/actions/{id}"), Some(&alice)).1["outcome"] == "accepted"
        });
    }
    // The state comes from routing, once the dataflow took the actions in.
    let detail = wait_for("routing shows the actions", Duration::from_secs(60), || {
        let (_, d) = f.get(&format!("/api/alerts/{alert}"), Some(&alice));
        (d["routing"]["assigned_to"] == "bob").then_some(d)
    });
    assert_eq!(detail["item"]["state"], "acknowledged");
    assert_eq!(detail["routing"]["acknowledged_by"], "alice");
    assert_eq!(detail["routing"]["notes"][0]["text"], "bureau FR informed");
    let history: Vec<schemas::desk::HistoryEntry> =
        serde_json::from_value(detail["history"].clone()).unwrap();
    let accepted: Vec<&str> = history
        .iter()
        .filter_map(|h| match &h.event {
            HistoryEvent::Action {
                officer_id,
                center,
                action,
                outcome: ActionOutcome::Accepted,
                ..
            } if officer_id == "alice" && *center == owner => Some(match action {
                schemas::ActionKind::Acknowledge => "acknowledge",
                schemas::ActionKind::Note { .. } => "note",
                schemas::ActionKind::Assign { .. } => "assign",
                _ => "other",
            }),
            _ => None,
        })
        .collect();
    assert_eq!(
        accepted,
        vec!["acknowledge", "note", "assign"],
        "{history:?}"
    );

    // Resolving closes it: it leaves the queue.
    let (status, _) = f.post(&format!("/api/alerts/{alert}/resolve"), Some(&alice), None);
    assert_eq!(status, 202);
    wait_for(
        "resolved alert leaves the queue",
        Duration::from_secs(60),
        || {
            let (_, q) = f.get("/api/alerts", Some(&alice));
            q.as_array()
                .unwrap()
                .iter()
                .all(|i| i["id"] != alert.as_str())
        },
    );
    let (status, body) = f.post(
        &format!("/api/alerts/{alert}/acknowledge"),
        Some(&alice),
        None,
    );
    assert_eq!(status, 400, "a closed alert takes no action: {body}");
}

/// Every string value in `v`.
fn strings(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[test]
fn red_fields_never_reach_an_officer_whose_center_the_owner_did_not_name() {
    // The scenario's TLP:RED partner names FR, SG and AR. Lyon's desk is named as FR;
    // Singapore's keeps the default recipient id (desk-singapore), which no owner names.
    let f = Fusion::start_with_centers(
        &[],
        "[[center]]\nname = \"Lyon\"\nrecipient = \"FR\"\npersonal_data = true\n",
    );
    let lyon = f.officer("alice", "Lyon");
    let sg = f.officer("wei", "Singapore");
    // Wait for an alert carrying a TLP:RED marking, as Lyon sees it.
    let red = wait_for(
        "an alert with a TLP:RED source",
        Duration::from_secs(240),
        || {
            let (_, q) = f.get("/api/alerts", Some(&lyon));
            q.as_array().unwrap().iter().find_map(|item| {
                let id = item["id"].as_str()?;
                let (_, d) = f.get(&format!("/api/alerts/{id}"), Some(&lyon));
                let a = &d["alert"];
                let red = a["marking"]["tlp"] == "RED"
                    || a["provenance"]["sources"]
                        .as_array()?
                        .iter()
                        .any(|s| s["marking"]["tlp"] == "RED");
                red.then(|| (id.to_string(), d))
            })
        },
    );
    let (id, lyon_view) = red;
    assert!(
        lyon_view["alert"]["title"].is_string(),
        "Lyon is named: it sees the alert"
    );

    // What only the alert's fields carry (not its id, rule or routing).
    let mut secret = BTreeSet::new();
    for field in [
        "title",
        "indicator",
        "victim_ips",
        "victims_by_country",
        "accounts",
        "event_ids",
        "provenance",
        "key",
    ] {
        strings(&lyon_view["alert"][field], &mut secret);
    }
    // Routing is every center's to see: an alert opened when its indicator arrived has an
    // `opened_at` equal to that indicator's `reported` time, and that is not a leak.
    let mut routed = BTreeSet::new();
    strings(&lyon_view["routing"], &mut routed);
    strings(&lyon_view["history"], &mut routed);
    for field in ["opened_at", "ack_deadline", "owner", "state", "severity"] {
        strings(&lyon_view["item"][field], &mut routed);
    }
    secret.retain(|s| {
        s.len() >= 6
            && s.as_str() != id
            && !routed.contains(s)
            && ![
                "partner", "osint", "ipv4", "domain", "RED", "AMBER", "GREEN", "CLEAR",
            ]
            .contains(&s.as_str())
    });
    assert!(!secret.is_empty());

    let (_, d) = f.get(&format!("/api/alerts/{id}"), Some(&sg));
    assert_eq!(d["alert"], Value::Null, "{d}");
    assert_eq!(d["item"]["title"], Value::Null);
    assert!(
        d["item"]["hidden"].as_str().unwrap().contains("TLP:RED"),
        "{d}"
    );
    let (_, why) = f.get(&format!("/api/alerts/{id}/explain"), Some(&sg));
    assert_eq!(why["shown"], false);
    assert_eq!(why["recipient"], "desk-singapore");
    // Nothing Singapore can read carries the fields: detail, queue, search, stream.
    let (_, queue) = f.get("/api/alerts", Some(&sg));
    let mut snapshot = None;
    f.stream(&sg, None, |e| {
        if let DeskEvent::Snapshot(s) = e {
            snapshot = Some(serde_json::to_value(s).unwrap());
            return false;
        }
        true
    });
    for (what, v) in [
        ("detail", &d),
        ("queue", &queue),
        ("explain", &why),
        ("stream", &snapshot.unwrap()),
    ] {
        let text = v.to_string();
        for s in &secret {
            assert!(
                !text.contains(s.as_str()),
                "{what} leaks {s:?} of a TLP:RED alert to Singapore"
            );
        }
    }
    for s in secret.iter().take(3) {
        let (_, found) = f.get(&format!("/api/alerts?q={}", urlencode(s)), Some(&sg));
        assert!(
            found
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["id"] != id.as_str()),
            "search by {s:?}"
        );
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn the_change_stream_resumes_after_a_reconnect_without_losing_or_repeating_a_change() {
    let f = Fusion::start(&[]);
    let alice = f.officer("alice", &f.duty_center());
    f.wait_open_alert(&alice);

    // A reference client that never disconnects.
    let reference = {
        let client = ops_tui::Client::new(&f.url, &alice).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded::<(u64, String)>();
        std::thread::spawn(move || {
            let _ = client.stream(None, |e| match &e {
                DeskEvent::Delta(d) => tx
                    .send((d.time_ms, serde_json::to_string(&e).unwrap()))
                    .is_ok(),
                _ => true,
            });
        });
        rx
    };
    // The client under test: three changes, then it drops the connection.
    let mut first: Vec<(u64, String)> = Vec::new();
    f.stream(&alice, None, |e| {
        if let DeskEvent::Delta(d) = &e {
            first.push((d.time_ms, serde_json::to_string(&e).unwrap()));
        }
        first.len() < 3
    });
    let last = first.last().unwrap().0;
    // Changes happen while it is away.
    let mut seen: Vec<(u64, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.iter().filter(|(t, _)| *t > last).count() < 5 {
        assert!(Instant::now() < deadline, "no changes after {last}");
        seen.push(reference.recv_timeout(Duration::from_secs(120)).unwrap());
    }
    let target = seen.last().unwrap().0;
    // It comes back with the last id it saw.
    let mut resumed: Vec<(u64, String)> = Vec::new();
    let mut snapshots = 0;
    f.stream(&alice, Some(last), |e| {
        match &e {
            DeskEvent::Snapshot(_) => snapshots += 1,
            DeskEvent::Delta(d) => resumed.push((d.time_ms, serde_json::to_string(&e).unwrap())),
            DeskEvent::Health(_) => {}
        }
        resumed.last().is_none_or(|(t, _)| *t < target)
    });
    assert_eq!(snapshots, 0, "resumed, not restarted");
    let expected: Vec<(u64, String)> = seen.into_iter().filter(|(t, _)| *t > last).collect();
    let times = |v: &[(u64, String)]| v.iter().map(|(t, _)| *t).collect::<Vec<_>>();
    assert_eq!(
        times(&resumed),
        times(&expected),
        "the same changes, in order"
    );
    assert_eq!(resumed, expected, "with the same content");
    assert!(resumed.first().unwrap().0 > last, "nothing repeated");

    // An id the desk never gave (or one too old) gets the whole desk first.
    let mut first_change = None;
    f.stream(&alice, Some(1), |e| match e {
        DeskEvent::Health(_) => true,
        other => {
            first_change = Some(matches!(other, DeskEvent::Snapshot(_)));
            false
        }
    });
    assert_eq!(first_change, Some(true));
}
