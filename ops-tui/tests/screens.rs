//! Snapshot tests of whole screens on a fixed-size test backend, at 80×24 (the smallest
//! terminal an officer may have over SSH) and 160×48.
//!
//! Review changes with `cargo insta review` (or `INSTA_UPDATE=always` and `git diff`).

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

mod common;

use common::*;
use ops_tui::app::{App, Connection, Msg};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn key(app: &mut App, c: KeyCode) {
    app.update(Msg::Key(KeyEvent::new(c, KeyModifiers::NONE)));
}

/// Snapshots the screen `make` builds at both sizes.
fn screens(name: &str, make: impl Fn((u16, u16)) -> App) {
    for size in SIZES {
        let app = make(size);
        let t = draw(&app);
        insta::assert_snapshot!(format!("{name}_{}x{}", size.0, size.1), t.backend());
    }
}

/// `app` with item(0) selected and its detail loaded (opened on a narrow terminal).
fn with_detail(mut app: App) -> App {
    let target = item(0).id;
    let at = app.view().iter().position(|id| *id == target).unwrap();
    for _ in 0..at {
        key(&mut app, KeyCode::Down);
    }
    app.update(Msg::Detail(Box::new(detail())));
    if !app.wide() {
        key(&mut app, KeyCode::Enter);
    }
    app
}

#[test]
fn empty_queue() {
    screens("empty_queue", |size| app(size, 0, None));
}

#[test]
fn busy_queue() {
    screens("busy_queue", |size| app(size, 30, None));
}

#[test]
fn detail_pane() {
    screens("detail", |size| with_detail(app(size, 30, None)));
}

#[test]
fn handover_view() {
    screens("handover", |size| {
        let mut a = app(size, 30, None);
        key(&mut a, KeyCode::Char('h'));
        a
    });
}

#[test]
fn help() {
    screens("help", |size| {
        let mut a = app(size, 30, None);
        key(&mut a, KeyCode::Char('?'));
        a
    });
}

#[test]
fn disconnected() {
    screens("disconnected", |size| {
        let mut a = app(size, 30, None);
        a.update(Msg::Connection(Connection::Disconnected {
            error: "error sending request: connection refused".into(),
            attempt: 3,
        }));
        a
    });
}

#[test]
fn drill_banner_is_red_on_every_screen() {
    screens("drill", |size| app(size, 30, Some("ex-2026-07")));
    for size in SIZES {
        for screen in [None, Some('h'), Some('?')] {
            let mut a = app(size, 30, Some("ex-2026-07"));
            if let Some(c) = screen {
                key(&mut a, KeyCode::Char(c));
            }
            let t = draw(&a);
            let buf = t.backend().buffer();
            let line: String = (0..buf.area.width).map(|x| buf[(x, 0)].symbol()).collect();
            assert!(line.contains("DRILL ex-2026-07"), "{line}");
            for x in 0..buf.area.width {
                assert_eq!(buf[(x, 0)].bg, Color::Red, "column {x} of the banner");
            }
        }
    }
    // Live operations have no banner.
    let t = draw(&app((80, 24), 30, None));
    assert!(!text(&t).contains("DRILL"));
}

#[test]
fn severity_reads_without_colour() {
    let t = draw(&app((160, 48), 30, None));
    let screen = text(&t);
    for symbol in ["◆ CRIT", "▲ HIGH", "● MED", "○ LOW"] {
        assert!(screen.contains(symbol), "{symbol} missing:\n{screen}");
    }
}
