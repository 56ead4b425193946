//! Plain open-source feed lists (one value per line) and CSV feeds, decoded into
//! [`OsintItem`]s.
//!
//! Semantics:
//! - The format is guessed from the first line that is neither blank nor a `#` comment: if
//!   it contains a comma the feed is CSV, else a plain list.
//! - Plain list: one value per line; blank lines, full-line `#` comments and trailing
//!   comments (` # …`, a `#` after a blank, so URL fragments survive) are skipped.
//! - CSV (read with the `csv` crate: quoted fields, rows of any length): lines starting with
//!   `#` are comments, and the first row is the header. The value column is
//!   `FeedContext::value_column`, or else the first of [`VALUE_COLUMNS`] present (names
//!   compared case-insensitively). Feeds that keep their header in the last comment line
//!   before the data (abuse.ch's `# first_seen_utc,dst_ip,…`) are read too: that comment is
//!   the header when the first row has no value column. A header without a value column
//!   rejects the whole feed with one entry naming the columns expected.
//! - Each value becomes an [`OsintItem`]: kind = `FeedContext::kind` or
//!   [`IndicatorKind::detect`], value normalized, `item_id` = the first 16 hex digits of the
//!   SHA-256 of the normalized value (so a value keeps its id across feed versions), no
//!   tags, not withdrawn. Each item is checked with [`OsintItem::to_indicator`]; one that
//!   fails is rejected with its 1-based line number. A value listed twice is kept once.
//! - Invalid UTF-8 is handled per line: the line (or CSV value cell) that is not UTF-8 is
//!   rejected with [`ErrorCode::InvalidUtf8`] and the rest of the feed is used.
//! - An invalid `FeedContext` (feed id, confidence, TTL) rejects the whole feed with one
//!   entry at line 0 naming `context.<field>`.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::decode::{DecodeError, ErrorCode};
use crate::indicator::IndicatorKind;
use crate::osint::OsintItem;
use crate::{SCHEMA_VERSION, Timestamp};

/// How to read one feed: who publishes it and what its values are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedContext {
    /// Id of the feed (becomes the owner and source of its indicators).
    pub feed_id: String,
    /// When this version of the feed was published.
    pub published: Timestamp,
    /// Kind of every value; guessed per value when absent.
    pub kind: Option<IndicatorKind>,
    /// Name of the CSV column holding the value; see [`VALUE_COLUMNS`] when absent.
    pub value_column: Option<String>,
    /// The feed's confidence, 0 to 100.
    pub confidence: u8,
    /// How long the feed vouches for its values, in seconds; none means no expiry.
    pub ttl_secs: Option<u64>,
}

/// What a feed decodes to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedDecoded {
    /// Valid items, in feed order, each value once.
    pub items: Vec<OsintItem>,
    /// Lines that could not be used: 1-based line number (0 for the whole feed) and why.
    pub rejected: Vec<(usize, DecodeError)>,
}

/// CSV column names that hold the value, in order of preference.
pub const VALUE_COLUMNS: [&str; 8] = [
    "value",
    "indicator",
    "ioc",
    "url",
    "domain",
    "ip",
    "ip_address",
    "dst_ip",
];

/// Decodes one version of a feed; never fails as a whole, bad lines are listed in `rejected`.
pub fn decode_feed(text: &[u8], ctx: &FeedContext) -> FeedDecoded {
    let mut out = Collector {
        ctx,
        seen: BTreeSet::new(),
        decoded: FeedDecoded::default(),
    };
    if let Err(e) = check_context(ctx) {
        out.decoded.rejected.push((0, e));
        return out.decoded;
    }
    let text = text
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(text);
    let lines: Vec<(usize, &[u8])> = text
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .collect();
    match lines.iter().find(|(_, l)| is_data(l)) {
        None => {}
        Some((_, l)) if l.contains(&b',') => decode_csv(text, &lines, &mut out),
        Some(_) => decode_plain(&lines, &mut out),
    }
    out.decoded
}

/// Checks the context once with the rules items are checked with, so a configuration
/// error is one entry and not one per line.
fn check_context(ctx: &FeedContext) -> Result<(), DecodeError> {
    let probe = item(ctx, Some(IndicatorKind::Ipv4), "192.0.2.1".into());
    match probe.to_indicator() {
        Ok(_) => Ok(()),
        Err(e) => Err(DecodeError::new(
            ErrorCode::InvalidValue,
            Some(format!("context.{}", e.field)),
            format!("the feed configuration is invalid: {}", e.reason),
        )),
    }
}

fn is_data(line: &[u8]) -> bool {
    let t = line.trim_ascii();
    !t.is_empty() && !t.starts_with(b"#")
}

fn not_utf8(e: std::str::Utf8Error) -> DecodeError {
    DecodeError::new(
        ErrorCode::InvalidUtf8,
        None,
        format!("byte {} of the value is not valid UTF-8", e.valid_up_to()),
    )
}

fn decode_plain(lines: &[(usize, &[u8])], out: &mut Collector<'_>) {
    for &(n, raw) in lines {
        if !is_data(raw) {
            continue;
        }
        match std::str::from_utf8(raw.trim_ascii()) {
            Ok(s) => {
                let value = strip_trailing_comment(s).trim();
                if !value.is_empty() {
                    out.value(n, value);
                }
            }
            Err(e) => out.reject(n, not_utf8(e)),
        }
    }
}

/// Cuts a ` # comment` (a `#` after a blank) off the end of a line.
fn strip_trailing_comment(s: &str) -> &str {
    let mut after_blank = false;
    for (i, c) in s.char_indices() {
        if c == '#' && after_blank {
            return s.get(..i).unwrap_or(s);
        }
        after_blank = c.is_whitespace();
    }
    s
}

fn decode_csv(text: &[u8], lines: &[(usize, &[u8])], out: &mut Collector<'_>) {
    let lines_of = Lines::new(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text);
    let mut records = reader.byte_records().filter_map(|r| match r {
        Ok(r) if r.iter().all(<[u8]>::is_empty) => None,
        other => Some(other),
    });
    let first = loop {
        match records.next() {
            None => return,
            Some(Ok(r)) => break r,
            Some(Err(e)) => out.reject(lines_of.error(&e), csv_error(&e)),
        }
    };
    let first_line = lines_of.record(&first);
    let first_names = names(&first);
    let (col, first_is_data) = match value_column(&first_names, out.ctx) {
        Some(c) => (c, false),
        None => match commented_header(lines, first_line, out.ctx) {
            Some(c) => c,
            None => {
                let expected = match &out.ctx.value_column {
                    Some(c) => format!("the configured column {c:?}"),
                    None => format!("one of {}", VALUE_COLUMNS.join(", ")),
                };
                let shown: Vec<String> = first_names.iter().take(12).map(|n| cut(n)).collect();
                out.reject(
                    first_line,
                    DecodeError::new(
                        ErrorCode::MissingField,
                        out.ctx.value_column.clone(),
                        format!(
                            "the CSV header {shown:?} has no value column; expected {expected} \
                             (set value_column to name another)"
                        ),
                    ),
                );
                return;
            }
        },
    };
    let rows = first_is_data
        .then_some(Ok(first))
        .into_iter()
        .chain(records);
    for row in rows {
        match row {
            Ok(r) => csv_row(&r, lines_of.record(&r), &col, out),
            Err(e) => out.reject(lines_of.error(&e), csv_error(&e)),
        }
    }
}

/// A located value column: its index and its name as written in the header.
struct Column {
    index: usize,
    name: String,
}

fn csv_row(r: &csv::ByteRecord, n: usize, col: &Column, out: &mut Collector<'_>) {
    match r.get(col.index).filter(|v| !v.is_empty()) {
        None => out.reject(
            n,
            DecodeError::new(
                ErrorCode::MissingField,
                Some(col.name.clone()),
                format!("the row has no value in column {:?}", col.name),
            ),
        ),
        Some(v) => match std::str::from_utf8(v) {
            Ok(s) => out.value(n, s),
            Err(e) => out.reject(n, not_utf8(e)),
        },
    }
}

fn names(r: &csv::ByteRecord) -> Vec<String> {
    r.iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

fn value_column(names: &[String], ctx: &FeedContext) -> Option<Column> {
    let find = |want: &str| {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(want.trim()))
            .map(|index| Column {
                index,
                name: names.get(index).cloned().unwrap_or_default(),
            })
    };
    match &ctx.value_column {
        Some(want) => find(want),
        None => VALUE_COLUMNS.iter().find_map(|c| find(c)),
    }
}

/// The header kept in the last comment line before the first row, if it names a value
/// column; the first row is then data.
fn commented_header(
    lines: &[(usize, &[u8])],
    first_line: usize,
    ctx: &FeedContext,
) -> Option<(Column, bool)> {
    let (_, comment) = lines
        .iter()
        .take_while(|(n, _)| *n < first_line)
        .filter(|(_, l)| l.trim_ascii().starts_with(b"#"))
        .last()?;
    let mut header = comment.trim_ascii();
    while let Some(rest) = header.strip_prefix(b"#") {
        header = rest;
    }
    let header = header.trim_ascii();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(header);
    let record = reader.byte_records().next()?.ok()?;
    Some((value_column(&names(&record), ctx)?, true))
}

/// Line numbers of CSV records. The reader's own positions do not count comment lines,
/// and point where it stood after the previous record (before line terminators and
/// comments), so the start of a record is found from there.
struct Lines<'a> {
    text: &'a [u8],
    /// Offsets of every `\n`.
    newlines: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a [u8]) -> Self {
        let newlines = text
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i)
            .collect();
        Lines { text, newlines }
    }

    fn record(&self, r: &csv::ByteRecord) -> usize {
        self.at(r.position())
    }

    fn error(&self, e: &csv::Error) -> usize {
        self.at(e.position())
    }

    /// The 1-based line of the record the reader reported at `pos` (0 if unknown).
    fn at(&self, pos: Option<&csv::Position>) -> usize {
        let Some(p) = pos else { return 0 };
        let mut i = usize::try_from(p.byte()).unwrap_or(usize::MAX);
        let mut line_start = i == 0 || (i > 0 && self.text.get(i - 1) == Some(&b'\n'));
        loop {
            match self.text.get(i) {
                Some(b'\n') => {
                    line_start = true;
                    i += 1;
                }
                Some(b'\r') => {
                    line_start = false;
                    i += 1;
                }
                Some(b'#') if line_start => {
                    // A comment line: the record starts after it.
                    i = match self
                        .newlines
                        .get(self.newlines.partition_point(|&nl| nl < i))
                    {
                        Some(&nl) => nl,
                        None => return 0,
                    };
                }
                _ => break,
            }
        }
        self.newlines.partition_point(|&nl| nl < i) + 1
    }
}

fn csv_error(e: &csv::Error) -> DecodeError {
    DecodeError::new(
        ErrorCode::InvalidValue,
        None,
        format!("unreadable CSV row: {e}"),
    )
}

fn cut(s: &str) -> String {
    s.chars().take(40).collect()
}

/// The OSINT item a feed value stands for (not yet checked).
fn item(ctx: &FeedContext, kind: Option<IndicatorKind>, value: String) -> OsintItem {
    let digest = Sha256::digest(value.as_bytes());
    OsintItem {
        schema_version: SCHEMA_VERSION,
        feed_id: ctx.feed_id.clone(),
        item_id: hex::encode(&digest[..8]),
        kind,
        value,
        published: ctx.published,
        valid_from: None,
        ttl_secs: ctx.ttl_secs,
        confidence: ctx.confidence,
        tags: Vec::new(),
        withdrawn: false,
    }
}

/// Accumulates items and rejections, keeping each value once.
struct Collector<'a> {
    ctx: &'a FeedContext,
    seen: BTreeSet<String>,
    decoded: FeedDecoded,
}

impl Collector<'_> {
    fn reject(&mut self, line: usize, e: DecodeError) {
        self.decoded.rejected.push((line, e));
    }

    fn value(&mut self, line: usize, raw: &str) {
        let raw = raw.trim();
        let kind = self.ctx.kind.or_else(|| IndicatorKind::detect(raw));
        let value = kind
            .and_then(|k| k.normalize(raw).ok())
            .unwrap_or_else(|| raw.to_string());
        let item = item(self.ctx, kind, value);
        match item.to_indicator() {
            Ok(_) => {
                if self.seen.insert(item.item_id.clone()) {
                    self.decoded.items.push(item);
                }
            }
            Err(e) => self.reject(line, e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx() -> FeedContext {
        FeedContext {
            feed_id: "urlhaus".into(),
            published: "2024-05-01T00:00:00Z".parse().expect("a valid timestamp"),
            kind: None,
            value_column: None,
            confidence: 70,
            ttl_secs: Some(86_400),
        }
    }

    fn decode(text: &str) -> FeedDecoded {
        decode_feed(text.as_bytes(), &ctx())
    }

    fn values(d: &FeedDecoded) -> Vec<(IndicatorKind, &str)> {
        d.items
            .iter()
            .map(|i| (i.kind.expect("the kind is set"), i.value.as_str()))
            .collect()
    }

    fn rejected_lines(d: &FeedDecoded) -> Vec<(usize, ErrorCode, Option<&str>)> {
        d.rejected
            .iter()
            .map(|(n, e)| (*n, e.code, e.field.as_deref()))
            .collect()
    }

    #[test]
    fn a_plain_list_with_comments_and_mixed_kinds() {
        use IndicatorKind::*;
        let d = decode(
            "# Example blocklist\n\
             # generated 2024-05-01\n\
             \n\
             198.51.100.7\n\
             Evil.Example.   # C2 of campaign X\n\
             https://evil.example/login#frag\n\
             \t2001:DB8::7  \n\
             203.0.113.9/24\n\
             D41D8CD98F00B204E9800998ECF8427E\n\
             Bob@Evil.Example\n\
             0x52908400098527886E0F7030069857D2E4169EE7\n",
        );
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        assert_eq!(
            values(&d),
            vec![
                (Ipv4, "198.51.100.7"),
                (Domain, "evil.example"),
                (Url, "https://evil.example/login"),
                (Ipv6, "2001:db8::7"),
                (Cidr, "203.0.113.0/24"),
                (Md5, "d41d8cd98f00b204e9800998ecf8427e"),
                (Email, "bob@evil.example"),
                (Wallet, "0x52908400098527886e0f7030069857d2e4169ee7"),
            ]
        );
    }

    #[test]
    fn items_carry_the_feed_context_and_a_content_id() {
        let d = decode("evil.example\n");
        let item = &d.items[0];
        let sha = hex::encode(Sha256::digest(b"evil.example"));
        assert_eq!(item.item_id, sha[..16]);
        assert_eq!(item.feed_id, "urlhaus");
        assert_eq!(item.schema_version, 1);
        assert_eq!((item.confidence, item.ttl_secs), (70, Some(86_400)));
        assert_eq!(item.published, ctx().published);
        assert!(item.tags.is_empty() && !item.withdrawn && item.valid_from.is_none());
        let ind = item.to_indicator().expect("a valid item");
        assert_eq!(ind.id, format!("osint:urlhaus:{}", &sha[..16]));
        assert_eq!(
            ind.valid_until,
            Some("2024-05-02T00:00:00Z".parse().expect("a timestamp"))
        );
        // The same value written differently has the same id and is kept once.
        let d = decode("evil.example\nEVIL.example.\n");
        assert_eq!(d.items.len(), 1);
    }

    #[test]
    fn bad_values_are_rejected_with_their_line_numbers() {
        let d = decode(
            "198.51.100.7\n\
             not a value\n\
             # 10.0.0.999 in a comment is fine\n\
             10.0.0.999\n\
             \n\
             evil.example\n\
             ftp2://evil.example/x\n",
        );
        assert_eq!(values(&d).len(), 2);
        assert_eq!(
            rejected_lines(&d),
            vec![
                (2, ErrorCode::InvalidValue, Some("value")),
                (4, ErrorCode::InvalidValue, Some("value")),
                (7, ErrorCode::InvalidValue, Some("value")),
            ]
        );
        assert!(
            d.rejected[0]
                .1
                .detail
                .contains("not a recognisable indicator value")
        );
    }

    #[test]
    fn a_configured_kind_is_enforced() {
        let c = FeedContext {
            kind: Some(IndicatorKind::Domain),
            ..ctx()
        };
        let d = decode_feed(b"evil.example\n198.51.100.7\n", &c);
        assert_eq!(values(&d), vec![(IndicatorKind::Domain, "evil.example")]);
        assert_eq!(
            rejected_lines(&d),
            vec![(2, ErrorCode::InvalidValue, Some("value"))]
        );
    }

    #[test]
    fn a_csv_with_a_header_and_quoted_fields() {
        let d = decode(
            "id,dateadded,URL,url_status,threat,tags\r\n\
             \"3017604\",\"2024-05-01 10:00:00\",\"http://evil.example/a,b.exe\",\"online\",\"malware_download\",\"exe,Emotet\"\r\n\
             \"3017605\",\"2024-05-01 10:05:00\",\"http://evil.example/multi\",\"online\",\"malware_download\",\"a\r\nb\"\r\n\
             # a comment between rows\r\n\
             3017606,2024-05-01 10:09:00,not a url,offline\r\n\
             3017607,2024-05-01 10:10:00\r\n\
             3017608,2024-05-01 10:11:00,http://198.51.100.7/x.sh,online,,\r\n",
        );
        assert_eq!(
            values(&d),
            vec![
                (IndicatorKind::Url, "http://evil.example/a,b.exe"),
                (IndicatorKind::Url, "http://evil.example/multi"),
                (IndicatorKind::Url, "http://198.51.100.7/x.sh"),
            ]
        );
        // The quoted field spanning two lines shifts the line numbers of later rows.
        assert_eq!(
            rejected_lines(&d),
            vec![
                (6, ErrorCode::InvalidValue, Some("value")),
                (7, ErrorCode::MissingField, Some("URL")),
            ]
        );
    }

    #[test]
    fn a_header_kept_in_a_comment_is_used() {
        let d = decode(
            "################################################################\n\
             # abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)          #\n\
             ################################################################\n\
             #\n\
             # first_seen_utc,dst_ip,dst_port,c2_status,last_online,malware\n\
             \"2021-01-17 07:44:46\",\"51.178.161.32\",\"4643\",\"online\",\"2024-02-26\",\"Dridex\"\n\
             \"2021-02-03 09:10:11\",\"198.51.100.77\",\"443\",\"offline\",\"2023-12-01\",\"QakBot\"\n",
        );
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        assert_eq!(
            values(&d),
            vec![
                (IndicatorKind::Ipv4, "51.178.161.32"),
                (IndicatorKind::Ipv4, "198.51.100.77")
            ]
        );
    }

    #[test]
    fn a_configured_value_column_wins() {
        let c = FeedContext {
            value_column: Some("Host".into()),
            ..ctx()
        };
        let d = decode_feed(
            b"ip,host,first_seen\n198.51.100.7,evil.example,2024-05-01\n",
            &c,
        );
        assert_eq!(values(&d), vec![(IndicatorKind::Domain, "evil.example")]);
    }

    #[test]
    fn a_csv_without_a_value_column_names_the_expected_columns() {
        let d = decode("# feed\nname,first_seen,comment\nevil,2024-05-01,x\n");
        assert!(d.items.is_empty());
        assert_eq!(rejected_lines(&d), vec![(2, ErrorCode::MissingField, None)]);
        let detail = &d.rejected[0].1.detail;
        assert!(
            detail.contains(r#"["name", "first_seen", "comment"]"#),
            "{detail}"
        );
        assert!(
            detail.contains("value, indicator, ioc, url, domain, ip, ip_address, dst_ip"),
            "{detail}"
        );
        let c = FeedContext {
            value_column: Some("observable".into()),
            ..ctx()
        };
        let d = decode_feed(b"url,observable_type\nhttp://evil.example/,url\n", &c);
        assert_eq!(
            rejected_lines(&d),
            vec![(1, ErrorCode::MissingField, Some("observable"))]
        );
        assert!(
            d.rejected[0]
                .1
                .detail
                .contains("the configured column \"observable\"")
        );
    }

    #[test]
    fn invalid_utf8_rejects_only_its_line() {
        let d = decode_feed(b"198.51.100.7\nevil\xff.example\nevil.example\n", &ctx());
        assert_eq!(values(&d).len(), 2);
        assert_eq!(rejected_lines(&d), vec![(2, ErrorCode::InvalidUtf8, None)]);
        let d = decode_feed(
            b"ip,note\n198.51.100.7,caf\xe9\n198.51.100.\xff,x\n",
            &ctx(),
        );
        assert_eq!(values(&d), vec![(IndicatorKind::Ipv4, "198.51.100.7")]);
        assert_eq!(rejected_lines(&d), vec![(3, ErrorCode::InvalidUtf8, None)]);
    }

    #[test]
    fn empty_feeds_and_byte_order_marks() {
        assert_eq!(decode(""), FeedDecoded::default());
        assert_eq!(decode("# nothing today\n\n"), FeedDecoded::default());
        let d = decode_feed(b"\xEF\xBB\xBFevil.example\n", &ctx());
        assert_eq!(values(&d), vec![(IndicatorKind::Domain, "evil.example")]);
        let d = decode_feed(b"\xEF\xBB\xBFValue,comment\nevil.example,x\n", &ctx());
        assert_eq!(values(&d), vec![(IndicatorKind::Domain, "evil.example")]);
        assert!(d.rejected.is_empty());
    }

    #[test]
    fn an_invalid_context_is_one_rejection() {
        let c = FeedContext {
            feed_id: "url haus".into(),
            ..ctx()
        };
        let d = decode_feed(b"evil.example\nother.example\n", &c);
        assert!(d.items.is_empty());
        assert_eq!(
            rejected_lines(&d),
            vec![(0, ErrorCode::InvalidValue, Some("context.feed_id"))]
        );
        let c = FeedContext {
            confidence: 101,
            ..ctx()
        };
        assert_eq!(
            rejected_lines(&decode_feed(b"evil.example\n", &c)),
            vec![(0, ErrorCode::InvalidValue, Some("context.confidence"))]
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let d = decode_feed(&bytes, &ctx());
            for item in &d.items {
                prop_assert!(item.to_indicator().is_ok());
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "[a-z0-9.,#\"/:@ \t\r\n-]{0,300}", column in proptest::option::of("[a-z]{1,6}")) {
            let c = FeedContext { value_column: column, ..ctx() };
            let d = decode_feed(text.as_bytes(), &c);
            let lines = text.split('\n').count();
            for (n, _) in &d.rejected {
                prop_assert!(*n <= lines);
            }
        }

        /// Oracle: the line numbers of bad CSV rows, around comments, blank lines, CRLF and
        /// quoted fields spanning lines.
        #[test]
        fn csv_rejections_carry_their_physical_line(
            rows in proptest::collection::vec(0u8..5, 0..30),
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = format!("# feed{eol}value,note{eol}");
            let mut line = 3;
            let mut want = Vec::new();
            for r in rows {
                match r {
                    0 => text.push_str(&format!("198.51.100.{},x{eol}", line % 250)),
                    1 => text.push_str(&format!("# comment{eol}")),
                    2 => text.push_str(eol),
                    3 => {
                        want.push(line);
                        text.push_str(&format!("bad value,x{eol}"));
                    }
                    _ => {
                        text.push_str(&format!("\"198.51.100.{}\",\"two{eol}lines\"{eol}", line % 250));
                        line += 1;
                    }
                }
                line += 1;
            }
            let d = decode(&text);
            let got: Vec<usize> = d.rejected.iter().map(|(n, _)| *n).collect();
            prop_assert_eq!(got, want);
        }

        /// Oracle: a list of addresses with comments, blanks and bad lines yields each address
        /// once, and each bad line by its number.
        #[test]
        fn a_list_yields_its_addresses_and_its_bad_lines(
            rows in proptest::collection::vec(
                prop_oneof![
                    any::<[u8; 4]>().prop_map(|a| std::net::Ipv4Addr::from(a).to_string()),
                    Just("# comment".to_string()),
                    Just(String::new()),
                    Just("bad value".to_string()),
                ],
                0..40,
            )
        ) {
            let text = rows.join("\n");
            let d = decode(&text);
            let mut want_values: Vec<&str> = Vec::new();
            let mut want_rejected = Vec::new();
            for (i, r) in rows.iter().enumerate() {
                if r == "bad value" {
                    want_rejected.push(i + 1);
                } else if !r.is_empty() && !r.starts_with('#') && !want_values.contains(&r.as_str()) {
                    want_values.push(r);
                }
            }
            let got: Vec<&str> = d.items.iter().map(|i| i.value.as_str()).collect();
            prop_assert_eq!(got, want_values);
            let got: Vec<usize> = d.rejected.iter().map(|(n, _)| *n).collect();
            prop_assert_eq!(got, want_rejected);
        }
    }
}
