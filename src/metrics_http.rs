//! `fusion run --metrics-addr`: the Prometheus endpoint (`/metrics`) and a liveness probe
//! (`/healthz`), served from a thread of their own so a busy dataflow never delays a scrape.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::routing::get;
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
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let served = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| {
                    rt.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(listener)?;
                        axum::serve(listener, app).await?;
                        Ok(())
                    })
                });
            if let Err(e) = served {
                tracing::error!(error = %e, "the metrics endpoint stopped");
            }
        })
        .context("cannot start the metrics thread")?;
    tracing::info!(%bound, "serving metrics on http://{bound}/metrics");
    Ok(bound)
}
