//! How long a new indicator takes to meet 30 days of retained history.
//!
//! Builds `--summaries` (observable, sensor, hour) summaries spread over 30 days
//! (720 hours) in the dataflow's compact join ([`dataflow::compact`]), arranged as
//! the live system keeps them, then publishes new indicators one at a time, each
//! matching `--hits` summaries, and reports the logical-time latency: the wall time
//! from the indicator's insertion until the join's output frontier has passed its
//! logical time (every retroactive match of it is out).
//!
//! ```text
//! cargo run --release -p load-tests --bin summaries_latency -- --summaries 20000000
//! ```

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use dataflow::compact::{Observation, match_keys};
use differential_dataflow::input::Input;
use timely::dataflow::ProbeHandle;

/// Measures retroactive matching latency against a large retained history.
#[derive(Parser, Debug)]
struct Args {
    /// Summaries in the retained history.
    #[arg(long, default_value_t = 20_000_000)]
    summaries: u64,
    /// Distinct observables among them.
    #[arg(long, default_value_t = 2_000_000)]
    observables: u64,
    /// New indicators published one after the other once the history is built.
    #[arg(long, default_value_t = 10)]
    probes: u64,
    /// Timely workers.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

/// A fixed mixing function (splitmix64): spreads synthetic keys like real key hashes.
fn mix(x: u64) -> u64 {
    let mut h = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let workers = args.workers.max(1);
    let (total, observables, probes) = (args.summaries, args.observables.max(1), args.probes);
    let matched = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&matched);
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index() as u64;
        let peers = worker.peers() as u64;
        let probe = ProbeHandle::new();
        let seen = Arc::clone(&seen);
        let (mut history, mut indicators) = worker.dataflow::<u64, _, _>(|scope| {
            let (history, observations) = scope.new_collection::<(u64, Observation), isize>();
            let (indicators, iocs) = scope.new_collection::<(u64, u32), isize>();
            match_keys(observations, iocs)
                .inspect(move |(_, _, diff)| {
                    seen.fetch_add(diff.unsigned_abs() as u64, Ordering::Relaxed);
                })
                .probe_with(&probe);
            (history, indicators)
        });
        // Build: one hour of summaries per logical time unit, 720 hours.
        let built = Instant::now();
        let per_hour = total / 720;
        for hour in 0..720u64 {
            for n in (0..per_hour).filter(|n| n % peers == index) {
                let id = hour * per_hour + n;
                let key = mix(id % observables);
                history.insert((
                    key,
                    Observation {
                        event: id,
                        source: (mix(id) % 5_000) as u32,
                        hour: hour as u32,
                    },
                ));
            }
            history.advance_to(hour + 1);
            indicators.advance_to(hour + 1);
            history.flush();
            indicators.flush();
            while probe.less_than(&hour.saturating_sub(8)) {
                worker.step();
            }
        }
        while probe.less_than(history.time()) {
            worker.step();
        }
        let build = built.elapsed();
        // Probe: each new indicator names an observable present in the history.
        let mut latencies = Vec::new();
        for p in 0..probes {
            let at = 720 + 1 + p;
            if index == 0 {
                indicators.insert((mix(p * 7919 % observables), p as u32));
            }
            let started = Instant::now();
            history.advance_to(at);
            indicators.advance_to(at);
            history.flush();
            indicators.flush();
            while probe.less_than(&at) {
                worker.step();
            }
            latencies.push(started.elapsed());
        }
        (build, latencies)
    })
    .map_err(|e| anyhow::anyhow!("timely: {e}"))?;
    let mut build = Duration::ZERO;
    let mut worst: Vec<Duration> = Vec::new();
    for r in guards.join() {
        let (b, lat) = r.map_err(|e| anyhow::anyhow!("worker: {e}"))?;
        build = build.max(b);
        if worst.is_empty() {
            worst = lat;
        } else {
            for (w, l) in worst.iter_mut().zip(lat) {
                *w = (*w).max(l);
            }
        }
    }
    worst.sort();
    let median = worst.get(worst.len() / 2).copied().unwrap_or_default();
    let max = worst.last().copied().unwrap_or_default();
    let _ = std::io::stdout().write_all(
        format!(
            "new indicator vs {} summaries ({} observables, 720 h): latency median {:.1} ms, max {:.1} ms; {} matches; history built in {:.1} s; peak RSS {:.0} MB\n",
            total,
            observables,
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            matched.load(Ordering::Relaxed),
            build.as_secs_f64(),
            load_tests::peak_rss_mb().unwrap_or(0.0),
        )
        .as_bytes(),
    );
    Ok(())
}
