//! `fusion topics create` and `fusion publish`: Kafka administration and publishing
//! partner, sensor and feed files in their native formats.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use ingest::files::{UNREADABLE_TIME_MS, natural_time_ms};
use ingest::kafka::{KafkaConfig, TopicProducer, create_topics};
use schemas::eve::{SensorInfo, decode_eve};
use schemas::feedlist::{FeedContext, decode_feed};
use schemas::stix::{StixContext, decode_bundle};
use schemas::{IndicatorKind, Tlp, Topic};

/// Kafka connection options shared by the Kafka subcommands.
#[derive(Args, Debug)]
pub struct KafkaArgs {
    /// Bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    kafka: String,
    /// Prefix of the topic names.
    #[arg(long, default_value = "fusion.")]
    topic_prefix: String,
}

impl KafkaArgs {
    fn config(&self) -> KafkaConfig {
        KafkaConfig {
            prefix: self.topic_prefix.clone(),
            ..KafkaConfig::new(&self.kafka)
        }
    }
}

/// `fusion topics …`
#[derive(Subcommand, Debug)]
pub enum TopicsCommand {
    /// Creates every input and output topic (existing ones are left alone).
    Create {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Partitions per topic.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Accepted for older scripts: the indicator topic always keeps every version now
        /// (no topic is compacted), so a replay re-derives the same alert history.
        #[arg(long, hide = true)]
        keep_every_version: bool,
    },
}

/// Runs a `topics` subcommand.
pub fn topics(cmd: TopicsCommand) -> anyhow::Result<()> {
    match cmd {
        TopicsCommand::Create {
            kafka, partitions, ..
        } => {
            let cfg = KafkaConfig {
                partitions,
                ..kafka.config()
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            for (name, created) in rt.block_on(create_topics(&cfg))? {
                println!("{name}: {}", if created { "created" } else { "exists" });
            }
            Ok(())
        }
    }
}

/// Native formats `fusion publish` reads.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A STIX 2.1 bundle (to partner.indicators).
    Stix,
    /// Suricata EVE JSON lines (to sensor.events).
    Eve,
    /// A plain feed list or CSV (to osint.items).
    Feed,
    /// Canonical records, one JSON value per line, published as they are (to any input topic).
    Jsonl,
}

/// Options of `fusion publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Topic (without prefix), e.g. partner.indicators.
    #[arg(long)]
    topic: String,
    /// Format of the file.
    #[arg(long, value_enum)]
    format: Format,
    /// STIX: the organisation owning the intelligence.
    #[arg(long, default_value = "partner")]
    owner: String,
    /// STIX: TLP for indicators without a readable marking.
    #[arg(long, default_value = "AMBER")]
    tlp: String,
    /// STIX: recipients the owner shares with (comma-separated).
    #[arg(long, value_delimiter = ',')]
    sharing: Vec<String>,
    /// STIX: publish the bundle itself as one record (headers name the owner, TLP and
    /// sharing list; Fusion decodes it and dead-letters the objects it cannot use) instead
    /// of the canonical indicators decoded here.
    #[arg(long)]
    raw: bool,
    /// EVE: sensor id (when records carry no usable `host`).
    #[arg(long, default_value = "eve-sensor")]
    sensor_id: String,
    /// EVE: the sensor's country (ISO 3166-1 alpha-2).
    #[arg(long, default_value = "FR")]
    country: String,
    /// Feed: the feed's id.
    #[arg(long, default_value = "feed")]
    feed_id: String,
    /// Feed: kind of every value (guessed when absent).
    #[arg(long)]
    kind: Option<String>,
    /// Feed: CSV column holding the value.
    #[arg(long)]
    value_column: Option<String>,
    /// The file.
    file: PathBuf,
}

/// One record to publish.
struct Outgoing {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    timestamp_ms: i64,
    headers: Vec<(&'static str, Vec<u8>)>,
}

/// The key of a canonical record: the id that identifies it (indicator id, so the
/// compacted topic keeps the latest version), or none if the line cannot be read.
fn record_key(topic: Topic, line: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let field = |f: &str| v.get(f).and_then(|x| x.as_str()).map(str::to_string);
    let key = match topic {
        Topic::PartnerIndicators => field("id"),
        Topic::SensorEvents => field("event_id"),
        Topic::OsintItems => Some(format!("{}:{}", field("feed_id")?, field("item_id")?)),
        Topic::DeskActions => field("action_id"),
        _ => None,
    }?;
    Some(key.into_bytes())
}

/// Publishes a file; returns the number of records published.
pub fn publish(args: PublishArgs) -> anyhow::Result<u64> {
    let topic = Topic::from_name(&args.topic)
        .filter(|t| Topic::INPUTS.contains(t))
        .with_context(|| {
            format!(
                "{:?} is not an input topic; use one of sensor.events, partner.indicators, osint.items, desk.actions",
                args.topic
            )
        })?;
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let now = jiff::Timestamp::now();
    let expect = |wanted: Topic| -> anyhow::Result<()> {
        if topic != wanted {
            bail!("{:?} files go to {wanted}, not {topic}", args.format);
        }
        Ok(())
    };
    let mut rejected = 0u64;
    let records: Vec<Outgoing> = match args.format {
        Format::Jsonl => {
            // A line without a readable time takes the previous line's, as the file source does,
            // so a replay from Kafka sees the same logical times as a replay from the file.
            let mut last_ts = Some(UNREADABLE_TIME_MS);
            bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .map(|line| {
                    let ts = natural_time_ms(topic, line)
                        .or(last_ts)
                        .unwrap_or(UNREADABLE_TIME_MS);
                    last_ts = Some(ts);
                    Outgoing {
                        key: record_key(topic, line),
                        payload: line.to_vec(),
                        timestamp_ms: ts,
                        headers: Vec::new(),
                    }
                })
                .collect()
        }
        Format::Stix => {
            expect(Topic::PartnerIndicators)?;
            let tlp: Tlp = Tlp::parse(&args.tlp).with_context(|| {
                format!(
                    "{:?} is not a TLP level (CLEAR, GREEN, AMBER, AMBER+STRICT, RED)",
                    args.tlp
                )
            })?;
            let ctx = StixContext {
                owner: args.owner.clone(),
                source_id: args.owner.clone(),
                default_tlp: tlp,
                sharing: args.sharing.clone(),
            };
            let decoded = decode_bundle(&bytes, &ctx)
                .with_context(|| format!("{} is not a usable STIX bundle", args.file.display()))?;
            for s in &decoded.skipped {
                eprintln!(
                    "skipped {}: {} ({})",
                    s.object_id,
                    s.reason,
                    s.code.as_str()
                );
            }
            rejected += decoded.skipped.len() as u64;
            if args.raw {
                // Keyed by bundle id: the topic is compacted, and a bundle published again
                // replaces its earlier copy. Its time is that of its newest indicator.
                let id = serde_json::from_slice::<serde_json::Value>(&bytes)?
                    .get("id")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
                    .with_context(|| {
                        format!("{} has no bundle id to key it by", args.file.display())
                    })?;
                let newest = decoded
                    .indicators
                    .iter()
                    .map(|i| i.modified.as_millisecond())
                    .max()
                    .unwrap_or(now.as_millisecond());
                vec![Outgoing {
                    key: Some(id.into_bytes()),
                    payload: bytes.clone(),
                    timestamp_ms: newest,
                    headers: ingest::stix::headers(&ctx),
                }]
            } else {
                decoded
                    .indicators
                    .iter()
                    .map(|i| {
                        Ok(Outgoing {
                            key: Some(i.id.clone().into_bytes()),
                            payload: serde_json::to_vec(i)?,
                            timestamp_ms: i.modified.as_millisecond(),
                            headers: Vec::new(),
                        })
                    })
                    .collect::<anyhow::Result<_>>()?
            }
        }
        Format::Eve => {
            expect(Topic::SensorEvents)?;
            let sensor = SensorInfo {
                sensor_id: args.sensor_id.clone(),
                country: args.country.clone(),
            };
            let mut out = Vec::new();
            for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match decode_eve(line, &sensor) {
                    Ok(ev) => out.push(Outgoing {
                        key: Some(ev.event_id.clone().into_bytes()),
                        payload: serde_json::to_vec(&ev)?,
                        timestamp_ms: ev.observed_at.as_millisecond(),
                        headers: Vec::new(),
                    }),
                    Err(e) => {
                        rejected += 1;
                        eprintln!("line {}: {e}", n + 1);
                    }
                }
            }
            out
        }
        Format::Feed => {
            expect(Topic::OsintItems)?;
            let kind = match &args.kind {
                Some(k) => Some(
                    serde_json::from_value::<IndicatorKind>(serde_json::Value::String(k.clone()))
                        .with_context(|| format!("{k:?} is not an indicator kind"))?,
                ),
                None => None,
            };
            let ctx = FeedContext {
                feed_id: args.feed_id.clone(),
                published: now,
                kind,
                value_column: args.value_column.clone(),
                confidence: 50,
                ttl_secs: None,
            };
            let decoded = decode_feed(&bytes, &ctx);
            for (line, e) in &decoded.rejected {
                eprintln!("line {line}: {e}");
            }
            rejected += decoded.rejected.len() as u64;
            decoded
                .items
                .iter()
                .map(|i| {
                    Ok(Outgoing {
                        key: Some(format!("{}:{}", i.feed_id, i.item_id).into_bytes()),
                        payload: serde_json::to_vec(i)?,
                        timestamp_ms: i.published.as_millisecond(),
                        headers: Vec::new(),
                    })
                })
                .collect::<anyhow::Result<_>>()?
        }
    };
    if records.is_empty() {
        if rejected > 0 {
            bail!(
                "{} holds nothing to publish ({rejected} rejected)",
                args.file.display()
            );
        }
        println!("{} holds no records", args.file.display());
        return Ok(0);
    }
    let cfg = args.kafka.config();
    let producer = TopicProducer::new(&cfg.brokers, cfg.topic(topic))?;
    let bar = indicatif::ProgressBar::new(records.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} records {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if records.len() < 10_000 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    for r in &records {
        let headers: Vec<(&str, &[u8])> =
            r.headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        producer.send_with_headers(r.key.as_deref(), &r.payload, Some(r.timestamp_ms), &headers)?;
        bar.inc(1);
    }
    producer.flush()?;
    bar.finish_and_clear();
    println!(
        "published {} records to {} ({rejected} rejected)",
        records.len(),
        cfg.topic(topic)
    );
    Ok(records.len() as u64)
}

/// Publishes the embedded scenario (seed `seed`, `rate` events per second, starting now)
/// to the input topics of `brokers`, each record when the wall clock reaches its
/// timestamp (its Kafka timestamp), until `done` is set: the traffic of `fusion load --kafka`.
pub fn spawn_load_publisher(
    brokers: &str,
    prefix: &str,
    seed: u64,
    rate: u32,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    let mut producers = std::collections::BTreeMap::new();
    for topic in Topic::INPUTS {
        let producer = TopicProducer::new(brokers, format!("{prefix}{}", topic.suffix()))
            .with_context(|| format!("cannot produce to {brokers}"))?;
        producers.insert(topic, producer);
    }
    let generator = scenario::Generator::new(scenario::ScenarioConfig {
        seed,
        events: None,
        start_ms: jiff::Timestamp::now().as_millisecond(),
        events_per_sec: rate.max(1),
        track_truth: false,
        ..scenario::ScenarioConfig::default()
    });
    Ok(std::thread::Builder::new()
        .name("load-publisher".into())
        .spawn(move || -> anyhow::Result<()> {
            for rec in generator {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let wait = rec.timestamp_ms - jiff::Timestamp::now().as_millisecond();
                if wait > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(
                        u64::try_from(wait).unwrap_or(0),
                    ));
                }
                if let Some(p) = producers.get(&rec.topic) {
                    p.send(
                        rec.key.as_deref().map(str::as_bytes),
                        &rec.payload,
                        Some(rec.timestamp_ms),
                    )?;
                }
            }
            for p in producers.values() {
                p.flush()?;
            }
            Ok(())
        })?)
}
