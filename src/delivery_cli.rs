//! `fusion receive`, `fusion deliver` and `fusion explain-delivery`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use delivery::receiver;
use delivery::{Outbox, OutboxConfig, RetrySchedule, Secret, Subscriptions};
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
    /// Divide the Standard Webhooks retry schedule by this factor (drills and tests).
    #[arg(long, default_value_t = 1)]
    retry_scale: u32,
    /// Per-request timeout (15–30 s in production).
    #[arg(long, default_value = "20s", value_parser = crate::parse_duration)]
    request_timeout: Duration,
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

/// Delivers the alert changes of a file through the durable outbox until nothing is pending.
pub fn deliver(args: DeliverArgs) -> anyhow::Result<()> {
    let subs = Subscriptions::load(&args.subscriptions)?;
    let changes = read_changes(&args.alerts)?;
    let config = OutboxConfig {
        retry: RetrySchedule::scaled_down(args.retry_scale),
        request_timeout: args.request_timeout,
        ..OutboxConfig::default()
    };
    let outbox = Outbox::open(&args.outbox, subs, config)?;
    // Enqueueing is idempotent (keyed by webhook id), so a restart re-reads the whole file.
    let mut queued = 0;
    for c in &changes {
        let r = outbox.enqueue(c)?;
        queued += r.queued + r.retractions;
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
    let log = outbox.log()?;
    let count = |o: delivery::Outcome| log.iter().filter(|e| e.outcome == o).count();
    println!(
        "{}",
        serde_json::json!({
            "changes": changes.len(),
            "pending": outbox.pending()?,
            "delivered": count(delivery::Outcome::Delivered),
            "failed": count(delivery::Outcome::Failed),
            "cancelled": count(delivery::Outcome::Cancelled),
            "operator_alerts": outbox.operator_alerts()?,
        })
    );
    Ok(())
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
