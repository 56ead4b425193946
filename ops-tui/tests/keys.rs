//! Key handling: keys drive actions, and each action becomes the request the desk API
//! expects (checked as the HTTP call, and once on the wire).

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use common::*;
use ops_tui::app::{ActionError, App, Connection, Modal, Msg, Request};
use ops_tui::client::{Client, HttpCall, call_for};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use schemas::ActionKind;
use schemas::desk::{
    ActionOutcome, ActionReceipt, ActionUpdate, ApiErrorCode, DeskEvent, ErrorBody, HistoryEntry,
    HistoryEvent,
};

fn press(app: &mut App, code: KeyCode) -> Vec<Request> {
    app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn typed(app: &mut App, text: &str) -> Vec<Request> {
    text.chars()
        .flat_map(|c| press(app, KeyCode::Char(c)))
        .collect()
}

/// Only the action requests (detail fetches follow the selection).
fn acts(requests: Vec<Request>) -> Vec<HttpCall> {
    requests
        .into_iter()
        .filter(|r| matches!(r, Request::Act { .. }))
        .map(|r| call_for(&r))
        .collect()
}

fn post(path: String, body: Option<serde_json::Value>) -> HttpCall {
    HttpCall {
        method: "POST",
        path,
        body,
    }
}

fn selected(app: &App) -> String {
    app.selected_item().unwrap().id.clone()
}

#[test]
fn a_acknowledges_the_selected_alert() {
    let mut app = app((80, 24), 30, None);
    press(&mut app, KeyCode::Down);
    let id = selected(&app);
    assert_eq!(id, app.view()[1]);
    let sent = acts(press(&mut app, KeyCode::Char('a')));
    assert_eq!(
        sent,
        vec![post(format!("/api/alerts/{id}/acknowledge"), None)]
    );
}

#[test]
fn resolve_and_false_positive_ask_first() {
    let mut app = app((80, 24), 30, None);
    let id = selected(&app);
    assert!(acts(press(&mut app, KeyCode::Char('r'))).is_empty());
    assert!(matches!(app.modal, Some(Modal::Confirm { .. })));
    // 'n' cancels: nothing is sent.
    assert!(acts(press(&mut app, KeyCode::Char('n'))).is_empty());
    assert_eq!(app.modal, None);
    // Other keys leave the question open.
    press(&mut app, KeyCode::Char('r'));
    assert!(acts(press(&mut app, KeyCode::Char('j'))).is_empty());
    assert!(app.modal.is_some());
    let sent = acts(press(&mut app, KeyCode::Char('y')));
    assert_eq!(sent, vec![post(format!("/api/alerts/{id}/resolve"), None)]);

    press(&mut app, KeyCode::Char('x'));
    let sent = acts(press(&mut app, KeyCode::Enter));
    assert_eq!(
        sent,
        vec![post(format!("/api/alerts/{id}/false_positive"), None)]
    );
    press(&mut app, KeyCode::Char('x'));
    assert!(acts(press(&mut app, KeyCode::Esc)).is_empty());
}

#[test]
fn notes_assignments_and_escalations_carry_their_text() {
    let mut app = app((160, 48), 30, None);
    let id = selected(&app);
    press(&mut app, KeyCode::Char('n'));
    let mut sent = acts(typed(&mut app, "bureau FR calledx"));
    sent.extend(acts(press(&mut app, KeyCode::Backspace)));
    assert!(sent.is_empty(), "nothing is sent while typing");
    let sent = acts(press(&mut app, KeyCode::Enter));
    assert_eq!(
        sent,
        vec![post(
            format!("/api/alerts/{id}/note"),
            Some(serde_json::json!({"text": "bureau FR called"}))
        )]
    );
    // Assign proposes the officer's own name.
    press(&mut app, KeyCode::Char('t'));
    assert!(matches!(&app.modal, Some(Modal::Prompt { text, .. }) if text == "alice"));
    for _ in 0..5 {
        press(&mut app, KeyCode::Backspace);
    }
    typed(&mut app, "bob");
    let sent = acts(press(&mut app, KeyCode::Enter));
    assert_eq!(
        sent,
        vec![post(
            format!("/api/alerts/{id}/assign"),
            Some(serde_json::json!({"officer_id": "bob"}))
        )]
    );
    let sent = acts(press(&mut app, KeyCode::Char('e')));
    assert_eq!(sent, vec![post(format!("/api/alerts/{id}/escalate"), None)]);
    // An empty note is not sent.
    press(&mut app, KeyCode::Char('n'));
    assert!(acts(press(&mut app, KeyCode::Enter)).is_empty());
}

#[test]
fn the_handover_screen_accepts_the_handover() {
    let mut app = app((80, 24), 30, None);
    press(&mut app, KeyCode::Char('h'));
    let sent = acts(press(&mut app, KeyCode::Char('a')));
    assert_eq!(sent, vec![post("/api/handover/accept".into(), None)]);
    press(&mut app, KeyCode::Char('h'));
    // Back on the queue, 'a' acknowledges again.
    let id = selected(&app);
    let sent = acts(press(&mut app, KeyCode::Char('a')));
    assert_eq!(
        sent,
        vec![post(format!("/api/alerts/{id}/acknowledge"), None)]
    );
}

#[test]
fn search_sort_and_filter_change_the_queue() {
    let mut app = app((80, 24), 30, None);
    assert_eq!(app.view().len(), 30);
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "113.1");
    // The queue narrows while typing: 113.1 and 113.10..113.19, but 113.17's title is
    // withheld from Lyon, so the search cannot see it.
    assert_eq!(app.view().len(), 10);
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.search, "113.1");
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.view().len(), 30, "Esc clears the search");

    press(&mut app, KeyCode::Char('f'));
    let mine: Vec<_> = app
        .view()
        .iter()
        .map(|id| app.desk.queue[id].owner.clone())
        .collect();
    assert_eq!(mine.len(), 10);
    assert!(mine.iter().all(|o| o == "Lyon"));

    press(&mut app, KeyCode::Char('f'));
    press(&mut app, KeyCode::Char('f'));
    press(&mut app, KeyCode::Char('f'));
    let by_severity = app.view().to_vec();
    press(&mut app, KeyCode::Char('s'));
    let by_age = app.view().to_vec();
    assert_ne!(by_severity, by_age);
    let opened: Vec<_> = by_age
        .iter()
        .map(|id| app.desk.queue[id].opened_at)
        .collect();
    assert!(opened.windows(2).all(|w| w[0] <= w[1]), "oldest first");
}

#[test]
fn moving_the_selection_fetches_the_detail_once() {
    let mut app = app((160, 48), 30, None);
    let r = press(&mut app, KeyCode::Down);
    let id = selected(&app);
    assert_eq!(r, vec![Request::Detail(id.clone())]);
    // A stream change to that alert fetches it again; other alerts do not.
    let mut other = item(0);
    if other.id == id {
        other = item(1);
    }
    let mut d = delta(2);
    d.upserts.push(other);
    assert!(app.update(Msg::Stream(DeskEvent::Delta(d))).is_empty());
    let mut d = delta(3);
    d.upserts.push(app.desk.queue[&id].clone());
    assert_eq!(
        app.update(Msg::Stream(DeskEvent::Delta(d))),
        vec![Request::Detail(id)]
    );
}

#[test]
fn no_action_is_sent_while_disconnected() {
    let mut app = app((80, 24), 30, None);
    app.update(Msg::Connection(Connection::Disconnected {
        error: "refused".into(),
        attempt: 1,
    }));
    assert!(acts(press(&mut app, KeyCode::Char('a'))).is_empty());
    assert!(app.flash.as_ref().unwrap().error);
    let r = app.update(Msg::Connection(Connection::Connected));
    assert!(r.contains(&Request::Session), "the session is read again");
    assert_eq!(acts(press(&mut app, KeyCode::Char('a'))).len(), 1);
}

#[test]
fn the_dataflow_verdict_is_reported() {
    let mut app = app((80, 24), 30, None);
    let id = selected(&app);
    app.update(Msg::Acted {
        alert_id: Some(id.clone()),
        action: ActionKind::Acknowledge,
        result: Ok(ActionReceipt {
            action_id: "act-1".into(),
            at: now(),
            outcome: ActionOutcome::Pending,
        }),
    });
    assert!(
        app.flash
            .as_ref()
            .unwrap()
            .text
            .contains("waiting for the dataflow")
    );
    let mut d = delta(5);
    d.actions.push(ActionUpdate {
        alert_id: id.clone(),
        entry: HistoryEntry {
            at: now(),
            event: HistoryEvent::Action {
                action_id: "act-1".into(),
                officer_id: "alice".into(),
                center: "Lyon".into(),
                action: ActionKind::Acknowledge,
                outcome: ActionOutcome::Rejected {
                    code: "not_owner".into(),
                    reason: "Lyon does not own it".into(),
                },
            },
        },
    });
    app.update(Msg::Stream(DeskEvent::Delta(d)));
    let flash = app.flash.clone().unwrap();
    assert!(flash.error);
    assert!(
        flash.text.contains("rejected (not_owner)"),
        "{}",
        flash.text
    );
    // A synchronous refusal (403) is reported too.
    app.update(Msg::Acted {
        alert_id: Some(id),
        action: ActionKind::Resolve,
        result: Err(ActionError::Refused(ErrorBody {
            error: ApiErrorCode::NotOwner,
            message: "Singapore owns the alert".into(),
            owner: Some("Singapore".into()),
            action_id: None,
        })),
    });
    assert!(app.flash.unwrap().text.contains("Singapore owns the alert"));
}

/// The request as it reaches a server: method, path, bearer token, body.
#[test]
fn a_key_press_reaches_the_wire_with_the_token() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut head = Vec::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push(line.trim_end().to_string());
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let reply = r#"{"action_id":"act-9","at":"2026-07-01T12:00:00Z","outcome":"accepted"}"#;
        write!(
            conn,
            "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
            reply.len()
        )
        .unwrap();
        (head, String::from_utf8(body).unwrap())
    });
    let mut app = app((80, 24), 30, None);
    let id = selected(&app);
    press(&mut app, KeyCode::Char('n'));
    typed(&mut app, "called FR");
    let request = press(&mut app, KeyCode::Enter)
        .into_iter()
        .find(|r| matches!(r, Request::Act { .. }))
        .unwrap();
    let Request::Act { alert_id, action } = request else {
        unreachable!()
    };
    let client = Client::new(&url, "tok-123\n").unwrap();
    let receipt = client.act(alert_id.as_deref(), &action).unwrap();
    assert_eq!(receipt.action_id, "act-9");
    assert_eq!(receipt.outcome, ActionOutcome::Accepted);
    let (head, body) = server.join().unwrap();
    assert_eq!(head[0], format!("POST /api/alerts/{id}/note HTTP/1.1"));
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case("authorization: Bearer tok-123")),
        "{head:?}"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"text": "called FR"})
    );
}
