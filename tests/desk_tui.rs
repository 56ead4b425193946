//! The desk terminal end to end, in tmux: `fusion run` on the embedded scenario with
//! `--desk-addr`, and `fusion desk` in a 160×48 tmux session. An alert appears, is
//! acknowledged by key, and the acknowledgement shows through the API and in a second
//! desk session. The screens are printed (run with `--nocapture` to see them), and the
//! time from a closed logical time to the frame drawing it is reported, not asserted.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // A test that cannot unwrap has failed.

mod desk_common;

use std::process::Command;
use std::time::Duration;

use desk_common::{Fusion, fusion_bin, wait_for};

/// tmux on a socket of this test only, so no other tmux user is touched.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Self {
        Self {
            socket: format!("fusion-desk-test-{}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux is installed");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `command` in a detached 160×48 session called `name`.
    fn session(&self, name: &str, dir: &std::path::Path, command: &str) {
        self.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "160",
            "-y",
            "48",
            "-c",
            dir.to_str().unwrap(),
            command,
        ]);
    }

    fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend(keys);
        self.run(&args);
    }

    fn literal(&self, name: &str, text: &str) {
        self.run(&["send-keys", "-t", name, "-l", text]);
    }

    fn screen(&self, name: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", name])
    }

    fn wait_screen(&self, name: &str, what: &str, f: impl Fn(&str) -> bool) -> String {
        wait_for(what, Duration::from_secs(120), || {
            let s = self.screen(name);
            f(&s).then_some(s)
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// The id prefix in the detail pane's title (`┌ Alert 0123456789abcdef ─`).
fn detail_id(screen: &str) -> Option<String> {
    let at = screen.find("┌ Alert ")? + "┌ Alert ".len();
    let id: String = screen[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    (id.len() == 16).then_some(id)
}

#[test]
fn an_alert_is_acknowledged_from_the_terminal_and_seen_everywhere() {
    let mut f = Fusion::start_with_centers(
        &[],
        "[[center]]\nname = \"Lyon\"\nrecipient = \"FR\"\npersonal_data = true\n\n\
         [[center]]\nname = \"Singapore\"\nrecipient = \"SG\"\n\n\
         [[center]]\nname = \"Buenos Aires\"\nrecipient = \"AR\"\n",
    );
    let center = f.duty_center();
    let alice = f.officer("alice", &center);
    let bob = f.officer("bob", &center);
    std::fs::write(f.path("alice.token"), &alice).unwrap();
    std::fs::write(f.path("bob.token"), &bob).unwrap();
    let desk = |token: &str, latency: &str| {
        format!(
            "{} desk --url {} --token-file {token} --latency-log {latency}",
            fusion_bin(),
            f.url
        )
    };
    let tmux = Tmux::new();
    tmux.session(
        "alice",
        f.dir.path(),
        &desk("alice.token", "alice-latency.log"),
    );

    // An alert appears (the queue lists it with its severity symbol).
    let me = format!("alice@{center}");
    tmux.wait_screen("alice", "the queue with an open alert", |s| {
        s.contains(&me) && s.contains(" OPEN ") && detail_id(s).is_some()
    });
    // Only unacknowledged alerts of my center: f cycles all → my center → unacknowledged.
    tmux.keys("alice", &["f", "f"]);
    let queue = tmux.wait_screen(
        "alice",
        "the unacknowledged filter with a loaded detail",
        |s| {
            s.contains("filter unacknowledged")
                && s.contains("── History")
                && detail_id(s).is_some()
        },
    );
    let short = detail_id(&queue).unwrap();
    let (_, list) = f.get("/api/alerts", Some(&alice));
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .find(|i| i.starts_with(&short))
        .unwrap();
    println!("queue (alice, 160×48), before the acknowledgement:\n{queue}");

    // Acknowledge it by key; the terminal reports the dataflow's verdict.
    tmux.keys("alice", &["a"]);
    let acked = tmux.wait_screen("alice", "the acknowledgement accepted", |s| {
        s.contains("acknowledge on") && s.contains("accepted by the dataflow")
    });
    println!("after pressing a:\n{acked}");

    // Through the API: routing took it.
    let detail = wait_for(
        "routing shows the acknowledgement",
        Duration::from_secs(60),
        || {
            let (_, d) = f.get(&format!("/api/alerts/{id}"), Some(&bob));
            (d["routing"]["acknowledged_by"] == "alice").then_some(d)
        },
    );
    assert_eq!(detail["item"]["state"], "acknowledged");

    // In a second desk session: search the alert, its detail shows who acknowledged it.
    tmux.session("bob", f.dir.path(), &desk("bob.token", "bob-latency.log"));
    tmux.wait_screen("bob", "bob's desk", |s| {
        s.contains(&format!("bob@{center}")) && s.contains(" OPEN ")
    });
    tmux.keys("bob", &["/"]);
    tmux.literal("bob", &short);
    tmux.keys("bob", &["Enter"]);
    let marker = format!("acknowledge by alice@{center} ✓ accepted");
    let second = tmux.wait_screen("bob", "the acknowledgement in the second session", |s| {
        s.contains("Queue 1 ") && s.contains(" ACK ") && s.contains(&marker)
    });
    println!("detail (bob, second session):\n{second}");

    // A crash of the server: the desk says it is disconnected, and reconnects by itself
    // once the server is back (on the same address).
    f.stop();
    let down = tmux.wait_screen("alice", "the desk saying it is disconnected", |s| {
        s.contains("DISCONNECTED") && s.contains("STALE")
    });
    println!("while the server is down:\n{down}");
    f.restart();
    let back = tmux.wait_screen("alice", "the desk reconnected", |s| {
        s.contains(&me) && !s.contains("DISCONNECTED") && !s.contains("STALE")
    });
    println!("after the server restarted:\n{back}");

    // How long changes took from their closed logical time to a drawn frame.
    let text = std::fs::read_to_string(f.path("alice-latency.log")).unwrap_or_default();
    let mut lags: Vec<i64> = text
        .lines()
        .filter_map(|l| {
            let (t, drawn) = l.split_once(' ')?;
            Some(drawn.parse::<i64>().ok()? - t.parse::<i64>().ok()?)
        })
        .collect();
    lags.sort_unstable();
    if !lags.is_empty() {
        let p = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
        println!(
            "change to screen (closed logical time → frame drawn), {} changes: p50 {} ms, p95 {} ms, max {} ms",
            lags.len(),
            p(0.5),
            p(0.95),
            lags[lags.len() - 1]
        );
    }
}
