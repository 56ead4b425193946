//! Load drivers and benchmarks of Fusion: the Kafka ingest benchmark (`kafka_ingest`). The
//! scenario they drive comes from the [`scenario`] crate; the load driver of `fusion run`
//! is `fusion load`.

/// Peak resident set size of this process in MB (`VmHWM` of /proc/self/status), for
/// the benchmarks' reports; none where /proc is not available.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
