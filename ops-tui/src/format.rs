//! Short text forms of severities, states, durations and times for narrow columns.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use schemas::Severity;
use schemas::routing::AlertState;

/// Severity as a symbol and a word, so it reads without colour: `◆ CRIT`, `▲ HIGH`, `● MED`, `○ LOW`.
pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "◆ CRIT",
        Severity::High => "▲ HIGH",
        Severity::Medium => "● MED",
        Severity::Low => "○ LOW",
    }
}

/// Severity in full, with its symbol.
pub fn severity_long(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "◆ CRITICAL",
        Severity::High => "▲ HIGH",
        Severity::Medium => "● MEDIUM",
        Severity::Low => "○ LOW",
    }
}

/// State in a few letters.
pub fn state(s: AlertState) -> &'static str {
    match s {
        AlertState::Open => "OPEN",
        AlertState::Acknowledged => "ACK",
        AlertState::Resolved => "RESOLV",
        AlertState::FalsePositive => "FP",
    }
}

/// A duration in at most five characters: `45s`, `12m`, `4m05s` (under ten minutes),
/// `3h12m`, `2d03h`.
pub fn duration_ms(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..600 => format!("{}m{:02}s", s / 60, s % 60),
        600..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Age of something that happened at `then`, seen at `now`.
pub fn age(then: Timestamp, now: Timestamp) -> String {
    duration_ms(now.as_millisecond() - then.as_millisecond())
}

/// Time left before `deadline` (`-3m` once past).
pub fn left(deadline: Timestamp, now: Timestamp) -> String {
    let ms = deadline.as_millisecond() - now.as_millisecond();
    if ms < 0 {
        format!("-{}", duration_ms(-ms))
    } else {
        duration_ms(ms)
    }
}

/// `HH:MM` in the IANA zone `zone` (UTC when the zone is unknown).
pub fn local_hm(at: Timestamp, zone: &str) -> String {
    let tz = TimeZone::get(zone).unwrap_or(TimeZone::UTC);
    at.to_zoned(tz).strftime("%H:%M").to_string()
}

/// `HH:MM:SSZ` in UTC.
pub fn utc_hms(at: Timestamp) -> String {
    at.to_zoned(TimeZone::UTC).strftime("%H:%M:%SZ").to_string()
}

/// `YYYY-MM-DD HH:MMZ` in UTC.
pub fn utc_day_hm(at: Timestamp) -> String {
    at.to_zoned(TimeZone::UTC)
        .strftime("%Y-%m-%d %H:%MZ")
        .to_string()
}

/// A center's name in three capitals, for narrow headers: `Buenos Aires` → `BUE`.
pub fn abbreviation(center: &str) -> String {
    center
        .chars()
        .filter(|c| c.is_alphanumeric())
        .take(3)
        .flat_map(char::to_uppercase)
        .collect()
}

/// The first `n` characters of an id.
pub fn short_id(id: &str, n: usize) -> &str {
    match id.char_indices().nth(n) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

/// A number with thin groups of thousands: `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A text sparkline of `values` scaled to their maximum: `▁▃█▅`.
pub fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            let i = (v.saturating_mul(7) + max / 2)
                .checked_div(max)
                .unwrap_or(0);
            BARS[usize::try_from(i).unwrap_or(7).min(7)]
        })
        .collect()
}

/// `text` cut to `width` characters, with `…` when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fit_five_characters() {
        assert_eq!(duration_ms(45_000), "45s");
        assert_eq!(duration_ms(245_000), "4m05s");
        assert_eq!(duration_ms(12 * 60_000), "12m");
        assert_eq!(duration_ms(3 * 3_600_000 + 12 * 60_000), "3h12m");
        assert_eq!(duration_ms(2 * 86_400_000 + 3 * 3_600_000), "2d03h");
        assert_eq!(duration_ms(-5), "0s");
        let now = Timestamp::from_second(1_000).unwrap();
        assert_eq!(left(Timestamp::from_second(820).unwrap(), now), "-3m00s");
    }

    #[test]
    fn a_sparkline_scales_to_its_maximum() {
        assert_eq!(sparkline(&[0, 4, 8, 2]), "▁▅█▃");
        assert_eq!(sparkline(&[0, 0]), "▁▁");
        assert_eq!(sparkline(&[]), "");
    }

    #[test]
    fn local_times_follow_the_tz_database() {
        // 2026-07-01T12:00Z: Paris is on summer time (UTC+2), Buenos Aires UTC-3.
        let t: Timestamp = "2026-07-01T12:00:00Z".parse().unwrap();
        assert_eq!(local_hm(t, "Europe/Paris"), "14:00");
        assert_eq!(local_hm(t, "America/Argentina/Buenos_Aires"), "09:00");
        assert_eq!(local_hm(t, "Asia/Singapore"), "20:00");
        let w: Timestamp = "2026-01-15T12:00:00Z".parse().unwrap();
        assert_eq!(local_hm(w, "Europe/Paris"), "13:00");
    }

    #[test]
    fn small_forms() {
        assert_eq!(abbreviation("Buenos Aires"), "BUE");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(short_id("abcdef", 3), "abc");
    }
}
