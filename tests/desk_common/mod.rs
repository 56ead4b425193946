//! A real `fusion run` with its desk, for the desk's end-to-end tests.

#![allow(dead_code, clippy::unwrap_used)] // Each test binary uses a part; a test that cannot unwrap has failed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemas::desk::DeskEvent;
use serde_json::Value;

/// What a wait may return: `true`, or `Some(value)`.
pub trait Ready {
    /// What the wait gives back.
    type Out;
    /// The value, once the condition holds.
    fn ready(self) -> Option<Self::Out>;
}

impl Ready for bool {
    type Out = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Ready for Option<T> {
    type Out = T;
    fn ready(self) -> Option<T> {
        self
    }
}

/// Polls `f` until it holds; fails the test after `limit`.
pub fn wait_for<R: Ready>(what: &str, limit: Duration, mut f: impl FnMut() -> R) -> R::Out {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().ready() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `fusion` binary.
pub fn fusion_bin() -> &'static str {
    env!("CARGO_BIN_EXE_fusion")
}

/// A roster whose centers keep UTC and in which Lyon took the watch an hour ago and
/// holds it for seven more hours, so no handover falls inside a test.
pub fn stable_roster(dir: &Path) -> PathBuf {
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let at = |h: i64| {
        now.checked_add(jiff::Span::new().hours(h))
            .unwrap()
            .strftime("%H:%M")
            .to_string()
    };
    let text = format!(
        "[rules]\nmax_watch_hours = 12\nhandover_overlap_minutes = 15\n\n\
         [[centers]]\nname = \"Singapore\"\ntime_zone = \"UTC\"\nwatch_starts = \"{}\"\n\n\
         [[centers]]\nname = \"Lyon\"\ntime_zone = \"UTC\"\nwatch_starts = \"{}\"\n\n\
         [[centers]]\nname = \"Buenos Aires\"\ntime_zone = \"UTC\"\nwatch_starts = \"{}\"\n",
        at(15),
        at(-1),
        at(7)
    );
    let path = dir.join("roster.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `fusion run --desk-addr 127.0.0.1:0 --headless` on the embedded scenario.
pub struct Fusion {
    child: Child,
    /// The desk's URL.
    pub url: String,
    /// Its working directory (officers, roster, routing output).
    pub dir: tempfile::TempDir,
    /// Its stderr so far.
    pub stderr: Arc<Mutex<String>>,
    extra: Vec<String>,
    probe: String,
    http: reqwest::blocking::Client,
}

impl Drop for Fusion {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Fusion {
    /// Starts `fusion run` with `extra` arguments.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_with_centers(extra, "")
    }

    /// Starts `fusion run` with `extra` arguments and an officers file holding `centers`.
    pub fn start_with_centers(extra: &[&str], centers: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        stable_roster(dir.path());
        std::fs::write(dir.path().join("officers.toml"), centers).unwrap();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, url, stderr) = Self::spawn(dir.path(), "127.0.0.1:0", &extra);
        let mut f = Fusion {
            child,
            url,
            dir,
            stderr,
            extra,
            probe: String::new(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        f.probe = f.officer("probe", "Lyon");
        f
    }

    /// Stops `fusion run` (killed: a crash) and starts it again on the same address,
    /// with the same files.
    pub fn restart(&mut self) {
        self.stop();
        let addr = self.url.trim_start_matches("http://").to_string();
        let (child, url, stderr) = Self::spawn(self.dir.path(), &addr, &self.extra);
        self.child = child;
        self.url = url;
        self.stderr = stderr;
    }

    /// Kills `fusion run`.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn spawn(dir: &Path, addr: &str, extra: &[String]) -> (Child, String, Arc<Mutex<String>>) {
        let mut child = Command::new(fusion_bin())
            .current_dir(dir)
            .args(["run", "--desk-addr", addr, "--headless", "--rate", "2000"])
            .args([
                "--officers",
                "officers.toml",
                "--routing-out",
                "routing.jsonl",
            ])
            .args(["--roster", "roster.toml"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = crossbeam_channel::unbounded();
        {
            let pipe = child.stderr.take().unwrap();
            let log = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Some(at) = line.find("desk API on http://") {
                        let url: String = line[at + "desk API on ".len()..]
                            .chars()
                            .take_while(|c| !c.is_whitespace() && *c != '\u{1b}')
                            .collect();
                        let _ = tx.send(url);
                    }
                    log.lock().unwrap().push_str(&line);
                    log.lock().unwrap().push('\n');
                }
            });
        }
        let url = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                panic!(
                    "fusion run did not log its desk address:\n{}",
                    stderr.lock().unwrap()
                )
            });
        (child, url, stderr)
    }

    /// The path of a file in the working directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `fusion officer …` in the working directory; returns its stdout.
    pub fn officer_cmd(&self, args: &[&str]) -> String {
        let out = Command::new(fusion_bin())
            .current_dir(self.dir.path())
            .arg("officer")
            .args(args)
            .args(["--officers", "officers.toml"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fusion officer {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Adds an officer of `center`; returns the token.
    pub fn officer(&self, name: &str, center: &str) -> String {
        self.officer_cmd(&["add", name, "--center", center, "--roster", "roster.toml"])
            .trim()
            .to_string()
    }

    /// Revokes an officer.
    pub fn revoke(&self, name: &str) {
        self.officer_cmd(&["revoke", name]);
    }

    fn answer(resp: reqwest::blocking::Response) -> (u16, Value) {
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// `GET path` (with a bearer token).
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut r = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if path == "/api/events" {
            // Only the status matters: do not read an endless stream.
            let resp = r.send().unwrap();
            return (resp.status().as_u16(), Value::Null);
        }
        Self::answer(r.send().unwrap())
    }

    /// `POST path` with an optional JSON body.
    pub fn post(&self, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut r = self.http.post(format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        Self::answer(r.send().unwrap())
    }

    /// The duty status, once routing has one.
    pub fn duty(&self) -> Value {
        wait_for("a center on duty", Duration::from_secs(120), || {
            let (_, d) = self.get("/api/duty", Some(&self.probe));
            (!d["duty"].is_null()).then(|| d["duty"].clone())
        })
    }

    /// The center on duty.
    pub fn duty_center(&self) -> String {
        self.duty()["center"].as_str().unwrap().to_string()
    }

    /// A center that may not act on the queue now (not on duty, not in a handover overlap).
    pub fn non_owner_center(&self) -> String {
        let duty = self.duty();
        let overlap: jiff::Timestamp = duty["overlap_until"].as_str().unwrap().parse().unwrap();
        let previous = duty["previous"]
            .as_str()
            .filter(|_| jiff::Timestamp::now() < overlap);
        ["Singapore", "Lyon", "Buenos Aires"]
            .into_iter()
            .find(|c| *c != duty["center"].as_str().unwrap() && Some(*c) != previous)
            .unwrap()
            .to_string()
    }

    /// The id of an open (unacknowledged) alert, once there is one.
    pub fn wait_open_alert(&self, token: &str) -> String {
        wait_for("an open alert", Duration::from_secs(180), || {
            let (_, q) = self.get("/api/alerts?state=open", Some(token));
            q.as_array()?
                .iter()
                .find(|i| !i["owner"].as_str().unwrap_or_default().is_empty())
                .map(|i| i["id"].as_str().unwrap().to_string())
        })
    }

    /// The rejections routing wrote to `--routing-out`.
    pub fn routing_out_rejections(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.path("routing.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["change"]["view"] == "rejected" && v["change"]["diff"] == 1)
            .map(|v| v["change"]["action"].clone())
            .collect()
    }

    /// Reads the change stream as `token` (from after `last_id`) until `on` says stop.
    pub fn stream(&self, token: &str, last_id: Option<u64>, on: impl FnMut(DeskEvent) -> bool) {
        let client = ops_tui::Client::new(&self.url, token).unwrap();
        client.stream(last_id, on).unwrap();
    }
}
