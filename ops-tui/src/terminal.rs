//! The terminal's main loop: keys and network messages in, state updated, frame drawn.
//! The terminal is restored on exit and on panic (ratatui's init installs the hook).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};
use jiff::Timestamp;
use ratatui::crossterm::event::{self, Event};
use schemas::desk::DeskEvent;

use crate::app::{App, Msg};
use crate::client::{self, Client, ClientError};

/// How to reach the desk.
#[derive(Debug, Clone)]
pub struct Config {
    /// The desk's URL, such as `http://127.0.0.1:8080`.
    pub url: String,
    /// The officer's bearer token.
    pub token: String,
    /// Append `closed_time_ms drawn_at_ms` for each change drawn (to measure how long a
    /// change takes to reach the screen).
    pub latency_log: Option<PathBuf>,
}

/// Why the terminal stopped.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// The terminal could not be set up or drawn.
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    /// The client could not be built.
    #[error("desk client: {0}")]
    Client(#[from] ClientError),
}

/// The clock redraws at least this often (ages and deadlines move).
const TICK: Duration = Duration::from_millis(500);

/// The desk's logical time: the last closed time received, moved on by the wall clock
/// since (so ages and deadlines keep moving while nothing changes, and a drill shifted
/// in time shows its own clock).
#[derive(Debug, Default)]
struct Clock {
    anchor: Option<(i64, Instant)>,
}

impl Clock {
    fn seen(&mut self, event: &DeskEvent) {
        let t = match event {
            DeskEvent::Health(h) => h.closed_time.map(|t| t.as_millisecond()),
            other => other.time_ms().and_then(|t| i64::try_from(t).ok()),
        };
        if let Some(t) = t
            && self.anchor.is_none_or(|(a, _)| t >= a)
        {
            self.anchor = Some((t, Instant::now()));
        }
    }

    fn now(&self) -> Timestamp {
        match self.anchor {
            Some((t, at)) => {
                let ms = t.saturating_add(i64::try_from(at.elapsed().as_millis()).unwrap_or(0));
                Timestamp::from_millisecond(ms).unwrap_or_else(|_| Timestamp::now())
            }
            None => Timestamp::now(),
        }
    }
}

fn read_keys(to_app: Sender<Msg>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("desk-keys".into())
        .spawn(move || {
            loop {
                let msg = match event::poll(Duration::from_millis(200)) {
                    Ok(true) => match event::read() {
                        Ok(Event::Key(k)) => Msg::Key(k),
                        Ok(Event::Resize(w, h)) => Msg::Resize(w, h),
                        Ok(_) => continue,
                        Err(_) => return,
                    },
                    Ok(false) => {
                        // Nothing typed: only check that the app is still there.
                        if to_app.is_empty() && to_app.send(Msg::Tick(Timestamp::now())).is_err() {
                            return;
                        }
                        continue;
                    }
                    Err(_) => return,
                };
                if to_app.send(msg).is_err() {
                    return;
                }
            }
        })
        .map(|_| ())
}

/// Gives the terminal back (raw mode off, main screen) if a desk still holds it.
pub fn restore() {
    ratatui::restore();
}

/// Runs the terminal until the officer quits.
pub fn run(config: Config) -> Result<(), TuiError> {
    let client = Client::new(&config.url, &config.token)?;
    let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
    let requests = client::spawn(client, tx.clone())?;
    let mut latency = match &config.latency_log {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
        None => None,
    };
    let mut terminal = ratatui::try_init()?;
    let result = (|| -> Result<(), TuiError> {
        read_keys(tx)?;
        let size = terminal.size()?;
        let mut clock = Clock::default();
        let mut app = App::new(clock.now(), (size.width, size.height));
        let mut last_tick = Instant::now();
        while !app.quit {
            terminal.draw(|f| crate::ui::render(f, &app))?;
            let mut drawn: Vec<u64> = Vec::new();
            let first = match rx.recv_timeout(TICK.saturating_sub(last_tick.elapsed())) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            for msg in first.into_iter().chain(rx.try_iter()) {
                let msg = match msg {
                    // The key thread's idle ticks carry the wall clock: use the desk's.
                    Msg::Tick(_) => Msg::Tick(clock.now()),
                    Msg::Stream(e) => {
                        clock.seen(&e);
                        if let Some(t) = e.time_ms()
                            && !matches!(e, DeskEvent::Health(_))
                        {
                            drawn.push(t);
                        }
                        Msg::Stream(e)
                    }
                    other => other,
                };
                for r in app.update(msg) {
                    let _ = requests.send(r);
                }
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                app.update(Msg::Tick(clock.now()));
            }
            if let Some(log) = latency.as_mut()
                && !drawn.is_empty()
            {
                terminal.draw(|f| crate::ui::render(f, &app))?;
                let at = Timestamp::now().as_millisecond();
                for t in drawn {
                    writeln!(log, "{t} {at}")?;
                }
            }
        }
        Ok(())
    })();
    ratatui::restore();
    result
}
