//! How fast the desk draws with 10,000 open alerts, and how long a change takes from
//! the desk's socket to a drawn frame. Reported, never asserted (targets: a frame in
//! under 16 ms, a change on screen within 1 s).
//!
//! `CARGO_TARGET_DIR=… cargo bench -p ops-tui --bench render`

#![allow(clippy::unwrap_used, missing_docs)] // A benchmark that cannot unwrap has failed.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};
use ops_tui::app::Msg;
use ops_tui::client::Client;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use schemas::Severity;
use schemas::desk::DeskEvent;

const OPEN: usize = 10_000;

fn frame(c: &mut Criterion) {
    for size in [(160, 48), (80, 24)] {
        let app = app(size, OPEN, None);
        let mut t = Terminal::new(TestBackend::new(size.0, size.1)).unwrap();
        c.bench_function(
            &format!("frame_10k_open_alerts_{}x{}", size.0, size.1),
            |b| {
                b.iter(|| {
                    t.draw(|f| ops_tui::ui::render(f, &app)).unwrap();
                });
            },
        );
    }
}

/// One alert changes (its severity, so the queue is sorted again): apply the delta and
/// draw, with 10,000 alerts open.
fn change_applied_and_drawn(c: &mut Criterion) {
    let mut app = app((160, 48), OPEN, None);
    let mut t = Terminal::new(TestBackend::new(160, 48)).unwrap();
    let mut time = 2_000_000_000_000u64;
    c.bench_function("delta_applied_and_drawn_10k", |b| {
        b.iter(|| {
            time += 1;
            let mut changed = item((time % OPEN as u64) as usize);
            changed.severity = if time.is_multiple_of(2) {
                Severity::Critical
            } else {
                Severity::Low
            };
            let mut d = delta(time);
            d.upserts.push(changed);
            app.update(Msg::Stream(DeskEvent::Delta(d)));
            t.draw(|f| ops_tui::ui::render(f, &app)).unwrap();
        });
    });
}

/// A change written as a server-sent event on a local socket, read by the client's
/// stream reader, applied and drawn: the terminal's share of "a change reaches the
/// screen" with 10,000 alerts open (the desk's share is measured end to end in
/// `tests/desk_tui.rs`).
fn change_from_socket_to_frame(c: &mut Criterion) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (to_socket, events) = crossbeam_channel::unbounded::<String>();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        write!(
            conn,
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        for data in events {
            write!(conn, "event: change\ndata: {data}\n\n").unwrap();
            conn.flush().unwrap();
        }
    });
    let (to_app, from_stream) = crossbeam_channel::unbounded::<DeskEvent>();
    let client = Client::new(&url, "token").unwrap();
    std::thread::spawn(move || client.stream(None, |e| to_app.send(e).is_ok()));

    let mut app = app((160, 48), OPEN, None);
    let mut t = Terminal::new(TestBackend::new(160, 48)).unwrap();
    let mut time = 3_000_000_000_000u64;
    c.bench_function("change_socket_to_frame_10k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                time += 1;
                let mut changed = item((time % OPEN as u64) as usize);
                changed.sightings = time;
                let mut d = delta(time);
                d.upserts.push(changed);
                let data = serde_json::to_string(&DeskEvent::Delta(d)).unwrap();
                let start = Instant::now();
                to_socket.send(data).unwrap();
                let event = from_stream.recv().unwrap();
                app.update(Msg::Stream(event));
                t.draw(|f| ops_tui::ui::render(f, &app)).unwrap();
                total += start.elapsed();
            }
            total
        });
    });
}

criterion_group!(
    benches,
    frame,
    change_applied_and_drawn,
    change_from_socket_to_frame
);
criterion_main!(benches);
