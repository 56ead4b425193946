//! `fusion run --metrics-addr`: the Prometheus endpoint (`/metrics`) and a liveness probe
//! (`/healthz`), served from a thread of their own so a busy dataflow never delays a scrape.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::thread::JoinHandle;

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::routing::get;
use fusion::supervise::ComponentResult;
use ingest::metrics::KafkaMetrics;

/// Binds `addr` and serves the metrics in the background; returns the bound address
/// (port 0 picks a free one).
pub fn serve(addr: SocketAddr, metrics: KafkaMetrics) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    serve_in_thread("metrics", 0, listener, app).context("cannot start the metrics thread")?;
    tracing::info!(%bound, "serving metrics on http://{bound}/metrics");
    Ok(bound)
}

/// The server threads started and not yet taken by [`take_servers`].
static SERVERS: Mutex<Vec<(String, JoinHandle<ComponentResult>)>> = Mutex::new(Vec::new());

/// The server threads started so far (by name), for `fusion run` to supervise: a server
/// that stops fails the run.
pub fn take_servers() -> Vec<(String, JoinHandle<ComponentResult>)> {
    SERVERS
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default()
}

/// Serves `app` on `listener` from a thread named `name` with a Tokio runtime of its own
/// (`workers` threads, or the current thread for 0), so a busy dataflow never delays a
/// request; an error that stops the server is logged and is the thread's result (see
/// [`take_servers`]).
pub fn serve_in_thread(
    name: &str,
    workers: usize,
    listener: std::net::TcpListener,
    app: Router,
) -> std::io::Result<()> {
    let what = name.to_string();
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let runtime = if workers == 0 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .thread_name(format!("{what}-worker"))
                    .enable_all()
                    .build()
            };
            let served = runtime.map_err(anyhow::Error::from).and_then(|rt| {
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    axum::serve(listener, app).await?;
                    Ok(())
                })
            });
            if let Err(e) = &served {
                tracing::error!(error = %e, server = %what, "a server stopped");
            }
            served.map_err(Into::into)
        })?;
    if let Ok(mut servers) = SERVERS.lock() {
        servers.push((name.to_string(), handle));
    }
    Ok(())
}
