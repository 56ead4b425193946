//! Workload W1 (../shared/bench/w1): 2 M JSON events and 100 k indicators, 10 % of
//! them arriving after 80 % of the events, matched live and retroactively by
//! Fusion's compact join, with the distinct sources per (indicator, hour).
//!
//! ```text
//! python3 ../shared/bench/w1/gen.py /tmp/w1
//! cargo run --profile bench -p load-tests --bin w1 -- /tmp/w1 --out /tmp/w1-out
//! python3 ../shared/bench/w1/check.py /tmp/w1-out /tmp/w1
//! ```
//!
//! The workers read `events.jsonl` in turns of 4 MiB blocks (split at line starts),
//! decode each block with one streaming decoder that borrows the fields matching needs,
//! and feed the dataflow with logical time = event time rounded up to `--epoch-secs`.
//! The indicators that arrive late (`arrival` = an event id) enter at that event's
//! time, so they meet the retained history: retroactive matching. Prints events/s and
//! peak RSS.
//!
//! Representation choices, each measured on W1: key hashes and `Copy` observations
//! instead of strings ([`dataflow::compact`]); a zero-sized difference ([`Present`]:
//! the inputs are insert-only), which saves a word per arranged update; observations
//! inserted sorted per step, so the batcher's merges meet ordered runs; three-hour
//! epochs, so the arrangements merge rarely.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use dataflow::compact::{Observation, distinct_sources_per_hour, match_keys};
use dataflow::observables::key_hash_parts;
use differential_dataflow::AsCollection;
use differential_dataflow::difference::Present;
use differential_dataflow::input::{Input, InputSession};
use serde::Deserialize;
use timely::dataflow::ProbeHandle;
use timely::dataflow::operators::vec::Map;

/// Runs workload W1 and writes matches.csv and counts.csv.
#[derive(Parser, Debug)]
struct Args {
    /// Directory written by gen.py (events.jsonl, iocs.jsonl).
    data: PathBuf,
    /// Where matches.csv and counts.csv are written.
    #[arg(long)]
    out: PathBuf,
    /// Timely workers (threads).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Epoch length, seconds of event time: the replay's batch. Three hours: few enough
    /// logical times that the arrangements merge rarely, small enough that the batcher
    /// holding one epoch stays well under 300 MB (the per-(indicator, hour) view takes
    /// its hours from the data, not from logical time).
    #[arg(long, default_value_t = 10_800)]
    epoch_secs: u64,
    /// Records read between two steps of a worker.
    #[arg(long, default_value_t = 65536)]
    step_every: usize,
    /// Epochs the input may run ahead of the slowest operator (bounds memory).
    #[arg(long, default_value_t = 1)]
    lag: u64,
}

/// The fields of a W1 event that matching needs, borrowed from the line.
#[derive(Deserialize)]
struct Event<'a> {
    event_id: u64,
    ts: u64,
    src_ip: &'a str,
    dst_ip: &'a str,
    domain: &'a str,
}

/// Bytes of `events.jsonl` a worker reads before the other's turn.
const BLOCK: u64 = 4 << 20;

/// One W1 indicator.
#[derive(Deserialize)]
struct Ioc {
    indicator: String,
    #[serde(rename = "type")]
    kind: String,
    arrival: u64,
}

/// The match-key hash of an indicator value: the same key the events produce.
fn ioc_key(ioc: &Ioc) -> anyhow::Result<u64> {
    Ok(match ioc.kind.as_str() {
        "ip" => key_hash_parts("ip:", &ioc.indicator),
        "domain" => key_hash_parts("domain:", &ioc.indicator),
        other => bail!("unknown indicator type {other:?}"),
    })
}

/// Calls `emit(key, observation)` for every match key of one event: the
/// destination address, the domain and each of its parents (as Fusion matches).
fn observe(ev: &Event, mut emit: impl FnMut(u64, Observation)) -> anyhow::Result<u64> {
    let src: Ipv4Addr = ev.src_ip.parse().context("bad src_ip")?;
    let obs = Observation {
        event: ev.event_id,
        source: u32::from(src),
        hour: u32::try_from(ev.ts / 3600).context("ts out of range")?,
    };
    emit(key_hash_parts("ip:", ev.dst_ip), obs);
    // The domain and each parent of two labels or more, as `observables::event_keys`.
    let mut rest = ev.domain;
    loop {
        emit(key_hash_parts("domain:", rest), obs);
        match rest.split_once('.') {
            Some((_, parent)) if parent.contains('.') => rest = parent,
            _ => break,
        }
    }
    Ok(ev.ts)
}

/// Inserts the observations of one step in sorted order, so the arrangement's batcher
/// receives runs already in order and its merges are cheap (W1: +6 % events/s).
fn push_sorted(
    pending: &mut Vec<(u64, Observation)>,
    events: &mut InputSession<u64, (u64, Observation), Present>,
) {
    pending.sort_unstable();
    for x in pending.drain(..) {
        events.update(x, Present);
    }
}

/// The first line start at or after byte `pos` of a file of `len` bytes: a line
/// holding byte `pos - 1` belongs to what comes before.
fn line_start(file: &mut BufReader<File>, pos: u64, len: u64) -> std::io::Result<u64> {
    if pos == 0 || pos >= len {
        return Ok(pos.min(len));
    }
    file.seek(SeekFrom::Start(pos - 1))?;
    let mut skipped = Vec::new();
    file.read_until(b'\n', &mut skipped)?;
    Ok(pos - 1 + skipped.len() as u64)
}

/// The `ts` of the event with id `id` (events are sorted by id): a binary search over byte offsets.
fn ts_of_event(path: &Path, id: u64) -> anyhow::Result<Option<u64>> {
    let len = std::fs::metadata(path)?.len();
    let mut f = BufReader::new(File::open(path)?);
    let mut line_at = |pos: u64| -> anyhow::Result<Option<(u64, u64)>> {
        f.seek(SeekFrom::Start(pos))?;
        let mut buf = Vec::new();
        if pos > 0 {
            f.read_until(b'\n', &mut buf)?; // the partial line
            buf.clear();
        }
        if f.read_until(b'\n', &mut buf)? == 0 {
            return Ok(None);
        }
        let ev: Event = serde_json::from_slice(&buf).context("bad event line")?;
        Ok(Some((ev.event_id, ev.ts)))
    };
    let (mut lo, mut hi) = (0u64, len);
    while hi - lo > 4096 {
        let mid = lo + (hi - lo) / 2;
        match line_at(mid)? {
            Some((eid, _)) if eid <= id => lo = mid,
            _ => hi = mid,
        }
    }
    f.seek(SeekFrom::Start(lo))?;
    let mut reader = f.take(hi - lo + 8192);
    let mut text = Vec::new();
    reader.read_to_end(&mut text)?;
    for line in text.split(|b| *b == b'\n') {
        if let Ok(ev) = serde_json::from_slice::<Event>(line)
            && ev.event_id == id
        {
            return Ok(Some(ev.ts));
        }
    }
    Ok(None)
}

/// What one worker found: matches (event, indicator index, diff), counts
/// (indicator index, hour, count × diff) and the number of events it read.
#[derive(Default)]
struct Found {
    matches: Vec<(u64, u32, isize)>,
    counts: Vec<(u32, u32, isize)>,
    events: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let events_path = args.data.join("events.jsonl");
    let iocs_text = std::fs::read_to_string(args.data.join("iocs.jsonl"))
        .with_context(|| format!("cannot read {}/iocs.jsonl", args.data.display()))?;
    let iocs: Vec<Ioc> = iocs_text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("bad indicator line")?;
    let epoch = args.epoch_secs.max(1);
    let time_of = move |ts: u64| ts.div_ceil(epoch) * epoch;
    // Late indicators enter at the time of the event they arrive after.
    let mut arrival_times: HashMap<u64, u64> = HashMap::new();
    for ioc in &iocs {
        if ioc.arrival > 0 && !arrival_times.contains_key(&ioc.arrival) {
            let ts = ts_of_event(&events_path, ioc.arrival)?
                .with_context(|| format!("no event {} for a late indicator", ioc.arrival))?;
            arrival_times.insert(ioc.arrival, time_of(ts));
        }
    }
    let keyed: Vec<(u64, u64)> = iocs
        .iter()
        .map(|i| {
            Ok((
                ioc_key(i)?,
                arrival_times.get(&i.arrival).copied().unwrap_or(0),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let keyed = Arc::new(keyed);
    let workers = args.workers.max(1);
    let (step_every, lag) = (args.step_every.max(1), args.lag);
    let path = Arc::new(events_path);

    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let peers = worker.peers();
        let probe = ProbeHandle::new();
        let found: Arc<std::sync::Mutex<Found>> = Arc::default();
        let (mut events, mut indicators) = worker.dataflow::<u64, _, _>(|scope| {
            // Insert-only inputs: a zero-sized difference saves a word per arranged update.
            let (events, observations) = scope.new_collection::<(u64, Observation), Present>();
            let (indicators, iocs) = scope.new_collection::<(u64, u32), Present>();
            let matched = match_keys(observations, iocs)
                .inner
                .map(|(d, t, Present)| (d, t, 1isize))
                .as_collection();
            let counts = distinct_sources_per_hour(matched.clone());
            let m = Arc::clone(&found);
            matched.inspect(move |((ind, obs), _t, diff)| {
                if let Ok(mut f) = m.lock() {
                    f.matches.push((obs.event, *ind, *diff));
                }
            });
            let c = Arc::clone(&found);
            counts
                .inspect(move |(((ind, hour), n), _t, diff)| {
                    if let Ok(mut f) = c.lock() {
                        // Summed over all updates, count × diff telescopes to the final count.
                        f.counts.push((*ind, *hour, *n * *diff));
                    }
                })
                .probe_with(&probe);
            (events, indicators)
        });
        // Indicators: this worker's share, initial ones now, late ones at their time.
        let mut late: Vec<(u64, u64, u32)> = Vec::new();
        for (n, (key, at)) in keyed.iter().enumerate() {
            if n % peers != index {
                continue;
            }
            let n = n as u32;
            if *at == 0 {
                indicators.update((*key, n), Present);
            } else {
                late.push((*at, *key, n));
            }
        }
        late.sort_unstable();
        let mut late = late.into_iter().peekable();

        let result: anyhow::Result<u64> = (|| {
            // Blocks of the file in turn (worker w takes blocks w, w + peers, …), so the
            // workers move through event time together instead of waiting for each other.
            let len = std::fs::metadata(&*path)?.len();
            let mut seeker = BufReader::new(File::open(&*path)?);
            let mut block_no = index as u64;
            let mut block = Vec::with_capacity(BLOCK as usize + 4096);
            let mut pending: Vec<(u64, Observation)> = Vec::with_capacity(step_every * 4);
            let mut now = 0u64;
            let mut since_step = 0usize;
            let mut read = 0u64;
            while block_no * BLOCK < len {
                let start = line_start(&mut seeker, block_no * BLOCK, len)?;
                let end = line_start(&mut seeker, (block_no + 1) * BLOCK, len)?;
                block_no += peers as u64;
                let mut file = File::open(&*path)?;
                file.seek(SeekFrom::Start(start))?;
                block.clear();
                file.take(end.saturating_sub(start))
                    .read_to_end(&mut block)?;
                // One streaming decoder over the block: no per-line copy or search.
                for ev in serde_json::Deserializer::from_slice(&block).into_iter::<Event>() {
                    let ev = ev.with_context(|| {
                        format!("bad event line in bytes {start}..{end} of events.jsonl")
                    })?;
                    let mut batch: [(u64, Observation); 8] = Default::default();
                    let mut n = 0;
                    let ts = observe(&ev, |k, o| {
                        if n < batch.len() {
                            batch[n] = (k, o);
                            n += 1;
                        }
                    })?;
                    let t = time_of(ts);
                    if t > now {
                        push_sorted(&mut pending, &mut events);
                        while let Some((at, key, i)) = late.next_if(|(at, _, _)| *at <= t) {
                            if at > now {
                                events.advance_to(at);
                                indicators.advance_to(at);
                                now = at;
                            }
                            indicators.update((key, i), Present);
                        }
                        events.advance_to(t);
                        indicators.advance_to(t);
                        events.flush();
                        indicators.flush();
                        now = t;
                        // Stay within a few epochs of the slowest operator (bounds memory).
                        while probe.less_than(&now.saturating_sub(lag * epoch)) {
                            worker.step();
                        }
                    }
                    pending.extend_from_slice(&batch[..n]);
                    read += 1;
                    since_step += 1;
                    if since_step >= step_every {
                        since_step = 0;
                        push_sorted(&mut pending, &mut events);
                        events.flush();
                        worker.step();
                    }
                }
            }
            push_sorted(&mut pending, &mut events);
            for (at, key, i) in late {
                if at > now {
                    events.advance_to(at);
                    indicators.advance_to(at);
                    now = at;
                }
                indicators.update((key, i), Present);
            }
            Ok(read)
        })();
        drop(events);
        drop(indicators);
        while worker.step() {}
        let read = result.map_err(|e| format!("worker {index}: {e:#}"))?;
        let mut found = std::mem::take(&mut *found.lock().map_err(|_| "poisoned")?);
        found.events = read;
        Ok::<Found, String>(found)
    })
    .map_err(|e| anyhow::anyhow!("timely: {e}"))?;
    let mut matched: HashMap<(u64, u32), isize> = HashMap::new();
    let mut counts: HashMap<(u32, u32), isize> = HashMap::new();
    let mut n_events = 0u64;
    for r in guards.join() {
        let found = r
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        n_events += found.events;
        for (event, ind, diff) in found.matches {
            *matched.entry((event, ind)).or_default() += diff;
        }
        for (ind, hour, n) in found.counts {
            *counts.entry((ind, hour)).or_default() += n;
        }
    }
    let mut matches: Vec<(u64, u32)> = matched
        .into_iter()
        .filter(|(_, d)| *d > 0)
        .map(|(k, _)| k)
        .collect();
    let elapsed = started.elapsed();
    std::fs::create_dir_all(&args.out)?;
    let mut m = std::io::BufWriter::new(File::create(args.out.join("matches.csv"))?);
    writeln!(m, "event_id,indicator")?;
    matches.sort_unstable();
    for (event, ind) in &matches {
        writeln!(m, "{event},{}", iocs[*ind as usize].indicator)?;
    }
    let mut c = std::io::BufWriter::new(File::create(args.out.join("counts.csv"))?);
    writeln!(c, "indicator,hour,distinct_src")?;
    for ((ind, hour), n) in &counts {
        if *n != 0 {
            writeln!(c, "{},{hour},{n}", iocs[*ind as usize].indicator)?;
        }
    }
    let rss = load_tests::peak_rss_mb().unwrap_or(0.0);
    let secs = elapsed.as_secs_f64();
    let n_events = n_events as f64;
    let _ = std::io::stdout().write_all(
        format!(
            "W1: {:.2} M events/s, {:.0} MB peak ({} events in {:.2} s, {} workers, {} matches)\n",
            n_events / secs / 1e6,
            rss,
            n_events,
            secs,
            workers,
            matches.len()
        )
        .as_bytes(),
    );
    Ok(())
}
