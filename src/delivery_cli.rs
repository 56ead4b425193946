//! `fusion receive`, `fusion deliver`, `fusion outbox` and `fusion explain-delivery`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use delivery::receiver;
use delivery::{Outbox, OutboxAdmin, OutboxConfig, RetrySchedule, Secret, Subscriptions};
use schemas::AlertChange;
use schemas::sharing::{Recipient, explain};
use tokio::sync::{mpsc, watch};

/// Arguments of `fusion receive`.
#[derive(clap::Args, Debug)]
pub struct ReceiveArgs {
    /// Port to listen on (0 = any free port; the address is printed first).
    #[arg(long)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// File holding the signing secret (`whsec_...`).
    #[arg(long)]
    secret_file: PathBuf,
    /// Also append every verified message to this file (JSON lines).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Largest accepted distance between the message timestamp and this clock, seconds.
    #[arg(long, default_value_t = delivery::webhook::DEFAULT_TOLERANCE_SECS)]
    tolerance_secs: i64,
}

/// Arguments of `fusion deliver`.
#[derive(clap::Args, Debug)]
pub struct DeliverArgs {
    /// Alert changes, JSON lines (as `fusion run --alerts-out` writes them).
    #[arg(long)]
    alerts: PathBuf,
    /// Subscriptions file (TOML).
    #[arg(long)]
    subscriptions: PathBuf,
    /// Directory of the durable outbox (created if missing; reuse it to resume).
    #[arg(long)]
    outbox: PathBuf,
    /// Divide the Standard Webhooks retry schedule and the circuit breaker's cooldown by
    /// this factor (drills and tests).
    #[arg(long, default_value_t = 1)]
    retry_scale: u32,
    /// Per-request timeout (15–30 s in production).
    #[arg(long, default_value = "20s", value_parser = crate::parse_duration)]
    request_timeout: Duration,
}

/// `fusion outbox`: what the outbox holds back, and putting it back on its way.
#[derive(clap::Subcommand, Debug)]
pub enum OutboxCommand {
    /// Lists parked messages (refused, or out of retries) and disabled endpoints.
    List {
        /// Directory of the outbox (the `--outbox` of `fusion run` or `fusion deliver`).
        #[arg(long, default_value = "fusion-outbox")]
        outbox: PathBuf,
        /// Only this recipient's messages.
        #[arg(long)]
        recipient: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-queues parked messages with a fresh retry budget, and re-enables disabled
    /// endpoints; the next `fusion run` or `fusion deliver` on the outbox sends them.
    Retry {
        /// Directory of the outbox (the `--outbox` of `fusion run` or `fusion deliver`).
        #[arg(long, default_value = "fusion-outbox")]
        outbox: PathBuf,
        /// Only this recipient's messages (default: every recipient's).
        #[arg(long)]
        recipient: Option<String>,
    },
}

/// Arguments of `fusion explain-delivery`.
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The alert id.
    alert_id: String,
    /// The recipient (a bureau or partner id from the subscriptions, or `public`).
    recipient: String,
    /// Alert changes, JSON lines; the latest version of the alert is explained.
    #[arg(long)]
    alerts: PathBuf,
    /// Subscriptions file (TOML).
    #[arg(long)]
    subscriptions: PathBuf,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fusion-delivery")
        .build()
        .context("cannot start the async runtime")
}

/// Runs the verifying receiver until Ctrl-C.
pub fn receive(args: ReceiveArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.secret_file)
        .with_context(|| format!("cannot read {}", args.secret_file.display()))?;
    let secret = Secret::parse(&text)
        .with_context(|| format!("bad secret in {}", args.secret_file.display()))?;
    let mut out = match &args.out {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open {}", p.display()))?,
        ),
        None => None,
    };
    runtime()?.block_on(async move {
        let (atx, mut accepted) = mpsc::channel(256);
        let (rtx, mut rejected) = mpsc::channel(256);
        let app = receiver::router(secret, args.tolerance_secs, atx, rtx);
        let listener = tokio::net::TcpListener::bind((args.bind, args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
        let addr = listener.local_addr()?;
        println!("listening on http://{addr}");
        std::io::stdout().flush()?;
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
        });
        loop {
            tokio::select! {
                Some(msg) = accepted.recv() => {
                    let line = serde_json::to_string(&msg)?;
                    println!("{line}");
                    std::io::stdout().flush()?;
                    if let Some(f) = out.as_mut() {
                        writeln!(f, "{line}")?;
                        f.flush()?;
                    }
                }
                Some(rej) = rejected.recv() => {
                    tracing::warn!(webhook_id = ?rej.webhook_id, reason = %rej.reason, "rejected a message");
                }
                else => break,
            }
        }
        server.await??;
        Ok(())
    })
}

fn read_changes(path: &Path) -> anyhow::Result<Vec<AlertChange>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut changes = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let c: AlertChange = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not an alert change", path.display(), i + 1))?;
        changes.push(c);
    }
    Ok(changes)
}

/// Changes enqueued per transaction: one fsync per batch instead of per change.
const ENQUEUE_BATCH: usize = 1000;

/// Delivers the alert changes of a file through the durable outbox until nothing is
/// pending. Fails (after printing the summary) if any message is parked or an endpoint
/// is disabled: nothing is left behind silently.
pub fn deliver(args: DeliverArgs) -> anyhow::Result<()> {
    let subs = Subscriptions::load(&args.subscriptions)?;
    let changes = read_changes(&args.alerts)?;
    let scale = args.retry_scale.max(1);
    let defaults = OutboxConfig::default();
    let config = OutboxConfig {
        retry: RetrySchedule::scaled_down(scale),
        request_timeout: args.request_timeout,
        breaker_cooldown: defaults.breaker_cooldown / scale,
        ..defaults
    };
    let outbox = Outbox::open(&args.outbox, subs, config)
        .with_context(|| format!("cannot open the outbox {}", args.outbox.display()))?;
    let start = outbox.log_position()?;
    // Enqueueing is idempotent (keyed by webhook id), so a restart re-reads the whole file.
    let mut queued = 0;
    for batch in changes.chunks(ENQUEUE_BATCH) {
        for r in outbox.enqueue_batch(batch)? {
            queued += r.queued + r.retractions;
        }
    }
    // Partner feedback for this file's alerts, as one period ending at its last version.
    let mut sightings = delivery::feedback::Sightings::default();
    for c in &changes {
        sightings.observe(c);
    }
    let period = changes.iter().map(|c| c.version).max().unwrap_or(0);
    let feedback = outbox.enqueue_feedback(&sightings, period)?;
    tracing::info!(
        changes = changes.len(),
        queued,
        feedback,
        "alert changes enqueued"
    );
    runtime()?.block_on(async {
        let (stop, shutdown) = watch::channel(false);
        let workers = outbox.spawn(shutdown);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if outbox.pending()? == 0 {
                        break;
                    }
                }
                _ = tokio::signal::ctrl_c() => {
                    tracing::info!("interrupted; undelivered messages stay in the outbox");
                    break;
                }
            }
        }
        let _ = stop.send(true);
        workers.join_all().await;
        anyhow::Ok(())
    })?;
    let log = outbox.log_since(start)?;
    let count = |o: delivery::Outcome| log.iter().filter(|e| e.outcome == o).count();
    let parked = outbox.parked_counts()?;
    let operator_alerts = outbox.operator_alerts()?;
    println!(
        "{}",
        serde_json::json!({
            "changes": changes.len(),
            "pending": outbox.pending()?,
            "delivered": count(delivery::Outcome::Delivered),
            "failed": count(delivery::Outcome::Failed),
            "cancelled": count(delivery::Outcome::Cancelled),
            "parked": parked.values().sum::<u64>(),
            "operator_alerts": operator_alerts,
        })
    );
    std::io::stdout().flush()?;
    if !operator_alerts.is_empty() {
        let who: Vec<&str> = operator_alerts
            .iter()
            .map(|a| a.recipient.as_str())
            .collect();
        bail!(
            "delivery is incomplete: {} operator alert(s) for {}; see `fusion outbox list --outbox {}`, \
             fix the cause, then `fusion outbox retry --outbox {}` and deliver again",
            operator_alerts.len(),
            who.join(", "),
            args.outbox.display(),
            args.outbox.display()
        );
    }
    Ok(())
}

/// `fusion outbox list` and `fusion outbox retry`.
pub fn outbox(cmd: OutboxCommand) -> anyhow::Result<()> {
    match cmd {
        OutboxCommand::List {
            outbox,
            recipient,
            json,
        } => {
            let admin = OutboxAdmin::open(&outbox)?;
            let parked = admin.parked(recipient.as_deref())?;
            let disabled: Vec<(String, String)> = admin
                .disabled_endpoints()?
                .into_iter()
                .filter(|(r, _)| recipient.as_ref().is_none_or(|want| want == r))
                .collect();
            let mut out = std::io::stdout().lock();
            if json {
                for (r, why) in &disabled {
                    let line = serde_json::json!({"disabled_endpoint": r, "detail": why});
                    writeln!(out, "{line}")?;
                }
                for p in &parked {
                    writeln!(out, "{}", serde_json::to_string(p)?)?;
                }
                return Ok(());
            }
            for (r, why) in &disabled {
                writeln!(out, "endpoint {r} is disabled: {why}")?;
            }
            if parked.is_empty() {
                writeln!(out, "no parked messages")?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<16} {:<34} {:>14} {:<10} {:>8} {:>6} {:<12} {:<20} DETAIL",
                "RECIPIENT",
                "ALERT",
                "VERSION",
                "KIND",
                "ATTEMPTS",
                "STATUS",
                "REASON",
                "PARKED AT"
            )?;
            for p in &parked {
                let at = jiff::Timestamp::from_millisecond(p.parked_at_ms)
                    .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{:<16} {:<34} {:>14} {:<10} {:>8} {:>6} {:<12} {:<20} {}",
                    p.recipient,
                    p.alert_id,
                    p.version,
                    format!("{:?}", p.kind).to_lowercase(),
                    p.attempts,
                    p.last_status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    p.reason.as_str(),
                    at,
                    p.detail
                )?;
            }
            writeln!(
                out,
                "{} parked message(s); re-queue with `fusion outbox retry --outbox {}{}`",
                parked.len(),
                outbox.display(),
                recipient
                    .as_ref()
                    .map(|r| format!(" --recipient {r}"))
                    .unwrap_or_default()
            )?;
            Ok(())
        }
        OutboxCommand::Retry { outbox, recipient } => {
            let admin = OutboxAdmin::open(&outbox)?;
            let by = std::env::var("USER").unwrap_or_else(|_| "an operator".to_string());
            let report = admin
                .requeue_parked(recipient.as_deref(), &format!("{by} (fusion outbox retry)"))?;
            println!(
                "{}",
                serde_json::json!({
                    "requeued": report.requeued,
                    "endpoints_enabled": report.enabled,
                })
            );
            Ok(())
        }
    }
}

/// Prints why each field of an alert was or was not sent to a recipient.
pub fn explain_delivery(args: ExplainArgs) -> anyhow::Result<()> {
    let subs = Subscriptions::load(&args.subscriptions)?;
    let changes = read_changes(&args.alerts)?;
    let Some(change) = changes
        .iter()
        .filter(|c| c.alert.id == args.alert_id)
        .max_by_key(|c| c.version)
    else {
        bail!(
            "alert {} is not in {}",
            args.alert_id,
            args.alerts.display()
        );
    };
    let recipient: Recipient = if args.recipient == "public" {
        Recipient::public()
    } else {
        let partner = subs.partners.iter().find(|p| p.id == args.recipient);
        match (subs.bureau(&args.recipient), partner) {
            (Some(b), _) => b.recipient.clone(),
            (None, Some(p)) => delivery::feedback::Sightings::recipient(p),
            (None, None) => bail!(
                "recipient {} is not a bureau or partner in {} (nor `public`)",
                args.recipient,
                args.subscriptions.display()
            ),
        }
    };
    let m = &change.alert.marking;
    println!(
        "version {} ({:?}), marking TLP:{} owner {} sharing [{}]",
        change.version,
        change.change,
        m.tlp.as_str(),
        m.owner,
        m.sharing.join(", ")
    );
    // Every contributing source's marking is checked as well.
    for c in &change.alert.provenance.sources {
        println!(
            "  source {} {} (indicator {}): TLP:{} owner {} sharing [{}]",
            match c.kind {
                schemas::ContributorKind::Partner => "partner",
                schemas::ContributorKind::Osint => "osint",
            },
            c.id,
            c.indicator_id,
            c.marking.tlp.as_str(),
            c.marking.owner,
            c.marking.sharing.join(", ")
        );
    }
    print!("{}", explain(&change.alert, &recipient, &subs.policy));
    Ok(())
}
