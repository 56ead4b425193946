//! Decoder fuzzing: every decoder of outside input — canonical records of each input
//! topic, STIX bundles with their Kafka headers, Suricata EVE lines, feed lists — runs on
//! mutated and generated inputs and must return a value or a clear error, never panic.
//!
//! Inputs come from valid seeds (`tests/data/fuzz/`, plus the OASIS STIX examples when
//! `../shared/data/stix` is present) through stacked mutations: bit flips, interesting
//! bytes, insertions, deletions, repeats, truncation, splices with other seeds, JSON
//! fragments, and structural edits of the parsed JSON (type swaps, huge and odd numbers,
//! hostile strings, deep nesting, removed, added and duplicated keys, extreme timestamps,
//! pattern-grammar soup). One case in eight is generated instead: random bytes, or an
//! object of the topic's own keys with random values.
//!
//! What each case must satisfy besides not panicking: an error has a non-empty detail;
//! a decoded value is valid and survives a round trip through the canonical decoder
//! (what an OSINT item, a bundle, an EVE line or a feed decodes to is a canonical record).
//!
//! Environment:
//! - `FUSION_FUZZ_CASES`: cases per decoder (default 2,000: a quick pass in the test suite);
//! - `FUSION_FUZZ_SEED`: seed of the run (default 1); case `n` of decoder `d` is a pure
//!   function of (seed, d, n);
//! - `FUSION_FUZZ_FROM`: first case number (default 0), to rerun one case:
//!   `FUSION_FUZZ_FROM=n FUSION_FUZZ_CASES=1`;
//! - `FUSION_FUZZ_ONLY`: run only the decoders whose name contains this.
//!
//! A panic stops the decoder's test, saves the input under the test's temporary
//! directory and names the case and the command that reruns it.
//!
//! The long run, ≥ 1 M cases per decoder, optimized but with overflow checks and debug
//! assertions on (a release build alone would wrap an overflow silently), in a profile of
//! its own so that it does not disturb `target/release`:
//!
//! ```text
//! FUSION_FUZZ_CASES=1000000 cargo test -p ingest --test fuzz_decoders \
//!     --config 'profile.fuzz.inherits="release"' --config 'profile.fuzz.overflow-checks=true' \
//!     --config 'profile.fuzz.debug-assertions=true' --profile fuzz -- --nocapture
//! ```
//!
//! Seed 1 with 1,000,000 cases per decoder ran without a panic (2026-12-04): canonical
//! events, indicators, OSINT items and desk actions 17 to 24 s each, EVE 218 s, feed
//! lists 236 s, STIX 430 s (10.9 GB of bundles), on two cores shared with builds. Seed 2,
//! 1,000,000 each, no panic, on the same two cores unshared: canonical 9 to 12 s each,
//! EVE 15 s, feed lists 25 s, STIX 163 s (3 min 20 s in all).

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use ingest::RawRecord;
use schemas::eve::{SensorInfo, decode_eve};
use schemas::feedlist::{FeedContext, decode_feed};
use schemas::{DecodeError, IndicatorKind, Input, Topic, decode_record};
use serde_json::{Map, Value};

// ---- Seeds ----

const EVENTS: &str = include_str!("data/fuzz/sensor.events.jsonl");
const INDICATORS: &str = include_str!("data/fuzz/partner.indicators.jsonl");
const OSINT: &str = include_str!("data/fuzz/osint.items.jsonl");
const ACTIONS: &str = include_str!("data/fuzz/desk.actions.jsonl");
const EVE: &str = include_str!("data/fuzz/eve.jsonl");
const STIX: &str = include_str!("data/fuzz/stix.jsonl");
const FEEDS: &str = include_str!("data/fuzz/feeds.txt");

fn lines(text: &str) -> Vec<Vec<u8>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

fn canonical_seeds(topic: Topic) -> Vec<Vec<u8>> {
    lines(match topic {
        Topic::SensorEvents => EVENTS,
        Topic::PartnerIndicators => INDICATORS,
        Topic::OsintItems => OSINT,
        _ => ACTIONS,
    })
}

fn stix_seeds() -> Vec<Vec<u8>> {
    let mut seeds = lines(STIX);
    let oasis = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/stix");
    if let Ok(dir) = std::fs::read_dir(oasis) {
        let mut paths: Vec<_> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        seeds.extend(paths.iter().filter_map(|p| std::fs::read(p).ok()));
    }
    seeds
}

fn feed_seeds() -> Vec<Vec<u8>> {
    FEEDS
        .split("\n%%%%\n")
        .map(|f| f.as_bytes().to_vec())
        .collect()
}

/// Every key of the canonical schemas and the native formats: generated objects and
/// added keys draw from them, so that generated inputs reach the validation code.
const KEYS: &[&str] = &[
    "schema_version",
    "event_id",
    "sensor_id",
    "country",
    "observed_at",
    "kind",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "proto",
    "domain",
    "url",
    "file_hashes",
    "md5",
    "sha1",
    "sha256",
    "email",
    "wallet",
    "victim_ip",
    "signature",
    "purchase",
    "card_ref",
    "card_country",
    "src_country",
    "departure_at",
    "merchant",
    "amount_minor",
    "currency",
    "id",
    "value",
    "owner",
    "source_kind",
    "source_id",
    "tlp",
    "sharing",
    "confidence",
    "created",
    "modified",
    "valid_from",
    "valid_until",
    "revoked",
    "labels",
    "feed_id",
    "item_id",
    "published",
    "ttl_secs",
    "tags",
    "withdrawn",
    "action_id",
    "alert_id",
    "officer_id",
    "center",
    "at",
    "action",
    "text",
    "type",
    "spec_version",
    "objects",
    "pattern",
    "pattern_type",
    "object_marking_refs",
    "granular_markings",
    "marking_ref",
    "definition_type",
    "definition",
    "extensions",
    "tlp_2_0",
    "name",
    "indicator_types",
    "timestamp",
    "event_type",
    "dest_ip",
    "dest_port",
    "host",
    "alert",
    "dns",
    "http",
    "tls",
    "fileinfo",
    "flow",
    "hostname",
    "rrname",
    "rrtype",
    "answers",
    "queries",
    "rdata",
    "sni",
    "version",
    "flow_id",
    "app_proto",
    "filename",
];

/// Values that break assumptions: odd numbers, wrong types, hostile strings.
const HOSTILE_JSON: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-0",
    "-1",
    "1.5",
    "-1.5e-300",
    "1e308",
    "1e309",
    "-1e309",
    "255",
    "256",
    "65535",
    "65536",
    "101",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "123456789012345678901234567890",
    "0.0000000000000000000000001",
    "[]",
    "{}",
    "[null]",
    "[[]]",
    "{\"\":{}}",
    "\"\"",
    "\" \"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\u202e\\u0000id\"",
    "\"\\uFEFF\"",
    "\"İ\"",
    "\"ß\"",
    "\"K\"",
    "\"ﬀ\"",
    "\"e\\u0301\"",
    "\"a。b。example\"",
    "\"xn--\"",
    "\"xn--a.example\"",
    "\"..\"",
    "\".\"",
    "\"-\"",
    "\"a..b\"",
    "\"-a.example\"",
    "\"a.example-\"",
    "\"1.2.3.4.5\"",
    "\"1.2.3\"",
    "\"01.02.03.04\"",
    "\"0x7f.1\"",
    "\"::ffff:1.2.3.4\"",
    "\"::\"",
    "\"::/0\"",
    "\"0.0.0.0/0\"",
    "\"1.2.3.4/33\"",
    "\"1.2.3.4/-1\"",
    "\"1.2.3.4/\"",
    "\"/8\"",
    "\"fe80::1%eth0\"",
    "\"[::1]\"",
    "\"http://\"",
    "\"http://[::1]:99999/\"",
    "\"http://a@b:c@d/\"",
    "\"file:///etc/passwd\"",
    "\"javascript:alert(1)\"",
    "\"http://例え.テスト/パス\"",
    "\"https://xn--e1afmkfd.xn--p1ai/\"",
    "\"http://%zz/\"",
    "\"a@\"",
    "\"@b\"",
    "\"a@b@c\"",
    "\"<script>alert(1)</script>\"",
    "\"../../etc/passwd\"",
    "\"\\\\\"",
    "\"\\t\\n\\r\"",
    "\"9999-12-31T23:59:59.999999999Z\"",
    "\"-009999-01-01T00:00:00Z\"",
    "\"+009999-01-01T00:00:00Z\"",
    "\"2026-02-30T00:00:00Z\"",
    "\"2026-11-23T10:00:00+99:00\"",
    "\"2026-11-23T25:00:00Z\"",
    "\"2026-11-23\"",
    "\"1970-01-01T00:00:00Z\"",
    "\"2100-01-01T00:00:00Z\"",
    "\"2024-05-02T08:15:42.118362+0200\"",
    "\"2024-05-02 08:15:42\"",
    "\"now\"",
    "\"AMBER+STRICT\"",
    "\"amber\"",
    "\"TLP:RED\"",
    "\"RED\"",
    "\"CLEAR\"",
    "\"WHITE\"",
    "\"ipv4\"",
    "\"cidr\"",
    "\"domain\"",
    "\"url\"",
    "\"md5\"",
    "\"sha1\"",
    "\"sha256\"",
    "\"email\"",
    "\"wallet\"",
    "\"ipv6\"",
    "\"partner\"",
    "\"osint\"",
    "\"sensor\"",
    "\"FR\"",
    "\"ZZ\"",
    "\"fr\"",
    "\"F\"",
    "\"FRA\"",
    "\"bundle\"",
    "\"indicator\"",
    "\"marking-definition\"",
    "\"stix\"",
    "\"2.1\"",
    "\"2.0\"",
    "\"alert\"",
    "\"dns\"",
    "\"http\"",
    "\"tls\"",
    "\"flow\"",
    "\"fileinfo\"",
    "\"stats\"",
    "\"acknowledge\"",
    "\"assign\"",
    "\"note\"",
    "\"accept_handover\"",
    "\"purchase\"",
    "\"ids_alert\"",
    "\"tlp\"",
    "\"query\"",
    "\"answer\"",
    "\"A\"",
    "\"CNAME\"",
    "\"whsec_c2VjcmV0\"",
];

/// Fragments for text-level insertion: JSON punctuation and escapes, separators, UTF-8
/// edge cases, and pieces of STIX patterns.
const FRAGMENTS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b",",
    b":",
    b"\\u",
    b"\\u0000",
    b"\\ud800",
    b"\\\"",
    b"null",
    b"1e999",
    b"-",
    b".",
    b"/",
    b"@",
    b"#",
    b"%",
    b"\n",
    b"\r\n",
    b"\t",
    b" ",
    b"\0",
    b"\xEF\xBB\xBF",
    b"\xC3",
    b"\xC3\x28",
    b"\xF0\x9F\x98",
    b"\xF4\x90\x80\x80",
    b"\xED\xA0\x80",
    b"\xFF",
    b"\xE2\x80\xAE",
    b"\"schema_version\":1,",
    b"\"schema_version\":2,",
    b"\"x_unknown\":1,",
    b"\"kind\":\"dns\",",
    b"\"value\":\"1.2.3.4\",",
    b",{}",
    b",[]",
    b"]}",
    b"}]",
    b"//",
    b"::",
    b"/32",
    b"/0",
    b"xn--",
    b"*.",
    b" OR ",
    b" AND ",
    b" FOLLOWEDBY ",
    b" WITHIN 5 SECONDS",
    b" REPEATS 3 TIMES",
    b" START t'2020-01-01T00:00:00Z' STOP t'2021-01-01T00:00:00Z'",
    b" = ",
    b" != ",
    b" IN ",
    b" NOT ",
    b" LIKE ",
    b" MATCHES ",
    b"ipv4-addr:value",
    b"ipv6-addr:value",
    b"domain-name:value",
    b"url:value",
    b"file:hashes.'SHA-256'",
    b"file:hashes.MD5",
    b"email-message:from_ref.value",
    b"[*]",
    b"'",
    b"\\'",
    b"(",
    b")",
    b"t'",
    b"h'ff'",
    b"b'AAAA'",
    b"'1.2.3.4'",
    b"'evil.example'",
    b"marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
    b"marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    b"indicator--",
    b"9999999999999999999999",
    b"-1",
    b"0.5",
    b"+0100",
    b"Z",
    b"T",
];

// ---- Randomness: SplitMix64, reproducible per case ----

struct Rng(u64);

impl Rng {
    fn for_case(seed: u64, decoder: &str, case: u64) -> Self {
        let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
        for b in decoder.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
        let mut r = Rng(h ^ case.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// `usual` seven times in eight, else one of `odd`: configuration that is mostly
    /// valid, so that most cases reach the decoder proper.
    fn mostly<T: Copy>(&mut self, usual: T, odd: &[T]) -> T {
        if self.chance(8) {
            self.pick(odd)
        } else {
            usual
        }
    }

    fn choose<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A length skewed towards small values, up to `max`.
    fn small(&mut self, max: usize) -> usize {
        let bits = self.below(usize::BITS as usize - max.leading_zeros() as usize + 1);
        self.below((1usize << bits).min(max) + 1)
    }
}

// ---- Mutation ----

/// Largest input a case may grow to: big enough for repeats and nesting to matter, small
/// enough for a million cases.
const MAX_INPUT: usize = 256 * 1024;

/// A range of `len` bytes inside `0..n`.
fn range(rng: &mut Rng, n: usize) -> (usize, usize) {
    let start = rng.below(n + 1);
    let end = start + rng.small(n - start);
    (start, end)
}

fn mutate_bytes(rng: &mut Rng, b: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    match rng.below(10) {
        0 if !b.is_empty() => {
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
        }
        1 if !b.is_empty() => {
            let i = rng.below(b.len());
            b[i] = rng.pick(b"\0\x7F\x80\xFF\"\\{}[],:.-/\n\r 0189eE+aZ\xC3\xEF");
        }
        2 => {
            let i = rng.below(b.len() + 1);
            let n = 1 + rng.small(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            b.splice(i..i, bytes);
        }
        3 => {
            let (s, e) = range(rng, b.len());
            b.drain(s..e);
        }
        4 => {
            // Repeat a range: long strings, many keys, huge arrays.
            let (s, e) = range(rng, b.len());
            let piece = b[s..e].to_vec();
            let times = 1 + rng.small(2000);
            let at = rng.below(b.len() + 1);
            let repeated: Vec<u8> = piece
                .iter()
                .copied()
                .cycle()
                .take(piece.len() * times)
                .collect();
            b.splice(at..at, repeated);
        }
        5 => {
            let at = rng.below(b.len() + 1);
            b.truncate(at);
        }
        6 => {
            // Splice a piece of another seed (of any topic of this decoder).
            let other = rng.choose(seeds);
            let (s, e) = range(rng, other.len());
            let (ds, de) = range(rng, b.len());
            b.splice(ds..de, other[s..e].iter().copied());
        }
        7 => {
            // Cross-over: this input's head, another seed's tail.
            let other = rng.choose(seeds);
            let cut = rng.below(b.len() + 1);
            let from = rng.below(other.len() + 1);
            b.truncate(cut);
            b.extend_from_slice(&other[from..]);
        }
        8 if !b.is_empty() => {
            // A line-level edit (feed lists and JSON lines alike).
            let mut ls: Vec<Vec<u8>> = b.split(|c| *c == b'\n').map(<[u8]>::to_vec).collect();
            let i = rng.below(ls.len());
            match rng.below(4) {
                0 => {
                    let l = ls[i].clone();
                    ls.insert(i, l);
                }
                1 => {
                    ls.remove(i);
                }
                2 => {
                    let j = rng.below(ls.len());
                    ls.swap(i, j);
                }
                _ => {
                    let v = rng.pick(HOSTILE_JSON).trim_matches('"').as_bytes().to_vec();
                    ls.insert(i, v);
                }
            }
            *b = ls.join(&b'\n');
        }
        _ => {
            let at = rng.below(b.len() + 1);
            b.splice(at..at, rng.pick(FRAGMENTS).iter().copied());
        }
    }
}

/// A random JSON value: a hostile one, or a nested container.
fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 2 } else { 5 }) {
        0 | 1 => serde_json::from_str(rng.pick(HOSTILE_JSON))
            .unwrap_or_else(|_| Value::String((rng.pick(HOSTILE_JSON)).to_string())),
        2 => Value::Array(
            (0..rng.small(4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        3 => Value::Object(random_object(rng, depth + 1)),
        _ => Value::String(pattern_soup(rng)),
    }
}

fn random_object(rng: &mut Rng, depth: usize) -> Map<String, Value> {
    (0..rng.small(12))
        .map(|_| ((rng.pick(KEYS)).to_string(), random_value(rng, depth + 1)))
        .collect()
}

/// Text built of STIX pattern tokens, addresses and separators.
fn pattern_soup(rng: &mut Rng) -> String {
    let n = rng.small(40);
    let mut s = Vec::new();
    for _ in 0..n {
        s.extend_from_slice(rng.pick(FRAGMENTS));
    }
    String::from_utf8_lossy(&s).into_owned()
}

/// Every value of a JSON tree, as a path of steps.
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                here.push(Step::Key(k.clone()));
                paths(c, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                here.push(Step::Index(i));
                paths(c, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn at<'v>(v: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    path.iter().try_fold(v, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::Index(i) => v.get_mut(*i),
    })
}

/// A structural edit of the JSON document in `b`; false if `b` is not JSON.
fn mutate_json(rng: &mut Rng, b: &mut Vec<u8>) -> bool {
    let Ok(mut doc) = serde_json::from_slice::<Value>(b) else {
        return false;
    };
    let mut all = Vec::new();
    paths(&doc, &mut Vec::new(), &mut all);
    let path = rng.choose(&all).clone();
    let key = match path.last() {
        Some(Step::Key(k)) => k.clone(),
        _ => String::new(),
    };
    let Some(node) = at(&mut doc, &path) else {
        return false;
    };
    match rng.below(9) {
        0 | 1 => *node = random_value(rng, 0),
        2 => {
            // Type swap that keeps the content: a number as a string, a string as a
            // number, a scalar in an array, an array's first element alone.
            *node = match node.take() {
                Value::String(s) => s
                    .parse::<serde_json::Number>()
                    .map(Value::Number)
                    .unwrap_or(Value::Array(vec![Value::String(s)])),
                Value::Number(n) => Value::String(n.to_string()),
                Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
                Value::Bool(b) => Value::String(b.to_string()),
                other => Value::Array(vec![other]),
            }
        }
        3 => {
            // Deep nesting around the value.
            let depth = 1 + rng.small(300);
            let mut v = node.take();
            for _ in 0..depth {
                v = if rng.chance(2) {
                    Value::Array(vec![v])
                } else {
                    let mut m = Map::new();
                    m.insert(key.clone(), v);
                    Value::Object(m)
                };
            }
            *node = v;
        }
        4 => match node {
            Value::Object(m) if !m.is_empty() => {
                let k = m
                    .keys()
                    .nth(rng.below(m.len()))
                    .cloned()
                    .unwrap_or_default();
                m.remove(&k);
            }
            Value::Array(a) if !a.is_empty() => {
                let i = rng.below(a.len());
                a.remove(i);
            }
            _ => *node = Value::Null,
        },
        5 => match node {
            Value::Object(m) => {
                m.insert((rng.pick(KEYS)).to_string(), random_value(rng, 0));
            }
            Value::Array(a) => {
                let i = rng.below(a.len() + 1);
                let v = if a.is_empty() || rng.chance(2) {
                    random_value(rng, 0)
                } else {
                    a[rng.below(a.len())].clone()
                };
                a.insert(i, v);
            }
            _ => *node = Value::Object(random_object(rng, 0)),
        },
        6 => {
            // A string edited in place: hostile text inserted, case changed, cut.
            if let Value::String(s) = node {
                let mut bytes = s.clone().into_bytes();
                match rng.below(4) {
                    0 => {
                        let at = rng.below(bytes.len() + 1);
                        bytes.splice(at..at, rng.pick(FRAGMENTS).iter().copied());
                    }
                    1 => bytes.make_ascii_uppercase(),
                    2 => {
                        let at = rng.below(bytes.len() + 1);
                        bytes.truncate(at);
                    }
                    _ => {
                        let piece = bytes.clone();
                        for _ in 0..rng.small(300) {
                            bytes.extend_from_slice(&piece);
                        }
                    }
                }
                *s = String::from_utf8_lossy(&bytes).into_owned();
            } else {
                *node = Value::String(pattern_soup(rng));
            }
        }
        7 => {
            if let Value::Number(_) = node {
                *node = serde_json::from_str(rng.pick(&[
                    "0",
                    "-1",
                    "1e308",
                    "18446744073709551615",
                    "-9223372036854775808",
                    "4294967296",
                    "65536",
                    "256",
                    "101",
                    "0.5",
                    "-0.0",
                ]))
                .unwrap_or(Value::Null);
            } else {
                *node = Value::String(pattern_soup(rng));
            }
        }
        _ => {
            // Serialize, then duplicate a key at the text level (serde_json keeps one
            // per object, a real producer may write two).
            let text = serde_json::to_string(&doc).unwrap_or_default();
            let k = rng.pick(KEYS);
            let v = rng.pick(HOSTILE_JSON);
            *b = text
                .replacen('{', &format!("{{\"{k}\":{v},"), 1)
                .into_bytes();
            return true;
        }
    }
    *b = serde_json::to_vec(&doc).unwrap_or_default();
    true
}

/// One input: a mutated seed (seven in eight) or a generated one.
fn input(rng: &mut Rng, seeds: &[Vec<u8>], json: bool) -> Vec<u8> {
    if rng.chance(8) {
        return match rng.below(3) {
            0 => (0..rng.small(600)).map(|_| rng.next() as u8).collect(),
            _ if json => {
                serde_json::to_vec(&Value::Object(random_object(rng, 0))).unwrap_or_default()
            }
            _ => {
                let n = rng.small(30);
                let mut lines: Vec<String> = (0..n)
                    .map(|_| rng.pick(HOSTILE_JSON).trim_matches('"').to_string())
                    .collect();
                if rng.chance(2) {
                    lines.insert(0, "value,first_seen,comment".to_string());
                }
                lines.join("\n").into_bytes()
            }
        };
    }
    let mut b = rng.choose(seeds).clone();
    // One mutation half the time: most inputs stay close to a valid record.
    let n = if rng.chance(2) { 1 } else { 1 + rng.small(4) };
    for _ in 0..n {
        if !(json && !rng.chance(3) && mutate_json(rng, &mut b)) {
            mutate_bytes(rng, &mut b, seeds);
        }
        if b.len() > MAX_INPUT {
            b.truncate(MAX_INPUT);
        }
    }
    b
}

// ---- The driver ----

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// What one decode gave: Ok, or the error code (for the report).
type Outcome = Result<(), &'static str>;

/// Runs `decode` on the cases of `decoder`; panics (failing the test) on the first case
/// that panics or breaks a property, after saving its input.
fn fuzz(
    decoder: &str,
    seeds: &[Vec<u8>],
    json: bool,
    mut decode: impl FnMut(&mut Rng, &[u8]) -> Result<Outcome, String>,
) {
    if std::env::var("FUSION_FUZZ_ONLY").is_ok_and(|only| !decoder.contains(&only)) {
        return;
    }
    let cases = env_u64("FUSION_FUZZ_CASES", 2_000);
    let seed = env_u64("FUSION_FUZZ_SEED", 1);
    let from = env_u64("FUSION_FUZZ_FROM", 0);
    let started = Instant::now();
    let (mut ok, mut bytes) = (0u64, 0u64);
    let mut errors: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut slowest = (Duration::ZERO, 0u64, 0usize);
    for case in from..from + cases {
        let mut rng = Rng::for_case(seed, decoder, case);
        let data = input(&mut rng, seeds, json);
        bytes += data.len() as u64;
        let t = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| decode(&mut rng, &data)));
        let took = t.elapsed();
        if took > slowest.0 {
            slowest = (took, case, data.len());
        }
        let failure = match outcome {
            Ok(Ok(Ok(()))) => {
                ok += 1;
                None
            }
            Ok(Ok(Err(code))) => {
                *errors.entry(code).or_default() += 1;
                None
            }
            Ok(Err(broken)) => Some(broken),
            Err(panic) => Some(format!(
                "panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)")
            )),
        };
        if let Some(why) = failure {
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
            let saved = dir.join(format!("fuzz-{decoder}-seed{seed}-case{case}.bin"));
            let _ = std::fs::write(&saved, &data);
            panic!(
                "{decoder}, case {case}: {why}\ninput ({} bytes) saved in {}: {}\nrerun: \
                 FUSION_FUZZ_ONLY={decoder} FUSION_FUZZ_SEED={seed} FUSION_FUZZ_FROM={case} \
                 FUSION_FUZZ_CASES=1 cargo test -p ingest --test fuzz_decoders",
                data.len(),
                saved.display(),
                String::from_utf8_lossy(&data[..data.len().min(2000)])
            );
        }
    }
    let wall = started.elapsed();
    eprintln!(
        "fuzz {decoder}: {cases} cases (seed {seed}, from {from}) in {:.1} s, {:.0} cases/s, \
         {:.1} MB in; ok {ok}, errors {errors:?}; slowest case {} ({} bytes) {:.1} ms",
        wall.as_secs_f64(),
        cases as f64 / wall.as_secs_f64().max(1e-9),
        bytes as f64 / 1e6,
        slowest.1,
        slowest.2,
        slowest.0.as_secs_f64() * 1e3,
    );
}

/// An error must say what is wrong.
fn explained(e: &DecodeError) -> Result<(), String> {
    if e.detail.trim().is_empty() {
        return Err(format!("an error without a detail: {e:?}"));
    }
    Ok(())
}

/// The outcome of a refused input whose error says what is wrong.
fn clear(e: &DecodeError) -> Result<Outcome, String> {
    explained(e)?;
    Ok(Err(e.code.as_str()))
}

/// A decoded canonical input is valid and decodes again to itself from its JSON.
fn round_trip(input: &Input) -> Result<(), String> {
    let (topic, json) = match input {
        Input::Event(ev) => {
            ev.validate()
                .map_err(|e| format!("decoded but invalid: {e}"))?;
            (Topic::SensorEvents, serde_json::to_vec(ev))
        }
        Input::Indicator(i) => {
            i.validate()
                .map_err(|e| format!("decoded but invalid: {e}"))?;
            (Topic::PartnerIndicators, serde_json::to_vec(i))
        }
        Input::Action(a) => {
            a.validate()
                .map_err(|e| format!("decoded but invalid: {e}"))?;
            (Topic::DeskActions, serde_json::to_vec(a))
        }
    };
    let json = json.map_err(|e| format!("a decoded value does not serialize: {e}"))?;
    match decode_record(topic, &json) {
        Ok(again) if again == *input => Ok(()),
        Ok(again) => Err(format!(
            "round trip changed the value:\n{input:?}\n{again:?}"
        )),
        Err(e) => Err(format!(
            "the canonical form is refused: {e}\n{}",
            String::from_utf8_lossy(&json)
        )),
    }
}

fn canonical(topic: Topic) {
    let mut seeds = canonical_seeds(topic);
    // A few records of the other topics, so splices cross schemas.
    for other in Topic::INPUTS.into_iter().filter(|t| *t != topic) {
        seeds.extend(canonical_seeds(other).into_iter().take(2));
    }
    let name = format!("canonical-{}", topic.suffix().replace('.', "-"));
    fuzz(&name, &seeds, true, |_, data| {
        match decode_record(topic, data) {
            Ok(input) => round_trip(&input).map(|()| Ok(())),
            Err(e) => clear(&e),
        }
    });
}

#[test]
fn canonical_sensor_events_never_panic() {
    canonical(Topic::SensorEvents);
}

#[test]
fn canonical_partner_indicators_never_panic() {
    canonical(Topic::PartnerIndicators);
}

#[test]
fn canonical_osint_items_never_panic() {
    canonical(Topic::OsintItems);
}

#[test]
fn canonical_desk_actions_never_panic() {
    canonical(Topic::DeskActions);
}

/// Header values of a STIX record: mostly valid, sometimes hostile.
fn stix_headers(rng: &mut Rng) -> Vec<(String, Vec<u8>)> {
    let mut h = Vec::new();
    let content = rng.mostly(
        &b"application/stix+json;version=2.1"[..],
        &[
            b"application/stix+json;version=2.0",
            b"APPLICATION/STIX+JSON",
            b"application/json",
            b"\xFF",
        ],
    );
    h.push(("content-type".to_string(), content.to_vec()));
    if !rng.chance(32) {
        let owner = rng.mostly(
            &b"partner-a"[..],
            &[b"", b"partner a", b"\xC3\x28", b"p\xE2\x80\xAEx"],
        );
        h.push(("fusion-owner".to_string(), owner.to_vec()));
    }
    if rng.chance(2) {
        let tlp = rng.mostly(
            &b"AMBER"[..],
            &[b"red", b"AMBER+STRICT", b"", b"PURPLE", b"\xFF"],
        );
        h.push(("fusion-default-tlp".to_string(), tlp.to_vec()));
    }
    if rng.chance(2) {
        let sharing = rng.mostly(
            &b"FR,DE"[..],
            &[b"", b" , ,FR,", b"ZZ,not a recipient,\"", b"\xC3"],
        );
        h.push(("fusion-sharing".to_string(), sharing.to_vec()));
    }
    h
}

#[test]
fn stix_bundles_never_panic() {
    let seeds = stix_seeds();
    fuzz("stix", &seeds, true, |rng, data| {
        let rec = RawRecord {
            topic: Topic::PartnerIndicators,
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            key: None,
            payload: data.to_vec(),
            headers: stix_headers(rng),
            future_timestamp_ms: None,
        };
        if !ingest::stix::is_stix(&rec) {
            // The canonical decoder, then the hint that the record may be a bundle.
            return match decode_record(rec.topic, data) {
                Ok(input) => round_trip(&input).map(|()| Ok(())),
                Err(e) => clear(&ingest::stix::explain_unmarked_bundle(&rec, e)),
            };
        }
        match ingest::stix::decode(&rec) {
            Ok(decoded) => {
                for i in decoded.indicators {
                    round_trip(&Input::Indicator(i))?;
                }
                for s in &decoded.skipped {
                    explained(&ingest::stix::skipped_error(s))?;
                }
                Ok(Ok(()))
            }
            Err(e) => clear(&e),
        }
    });
}

#[test]
fn eve_lines_never_panic() {
    let seeds = lines(EVE);
    fuzz("eve", &seeds, true, |rng, data| {
        let long = "x".repeat(200);
        let sensor = SensorInfo {
            sensor_id: rng.mostly("fr-ids-1", &["", "a b", &long]).to_string(),
            country: rng.mostly("FR", &["DE", "ZZ", "France", ""]).to_string(),
        };
        match decode_eve(data, &sensor) {
            Ok(ev) => round_trip(&Input::Event(ev)).map(|()| Ok(())),
            Err(e) => clear(&e),
        }
    });
}

#[test]
fn feed_lists_never_panic() {
    let seeds = feed_seeds();
    let kinds = [
        None,
        None,
        Some(IndicatorKind::Ipv4),
        Some(IndicatorKind::Cidr),
        Some(IndicatorKind::Domain),
        Some(IndicatorKind::Url),
        Some(IndicatorKind::Sha256),
        Some(IndicatorKind::Email),
        Some(IndicatorKind::Wallet),
    ];
    fuzz("feed", &seeds, false, |rng, data| {
        let ctx = FeedContext {
            feed_id: rng
                .mostly("urlhaus", &["", "bad id", "f\u{202e}"])
                .to_string(),
            published: rng.mostly(
                "2024-05-01T00:00:00Z".parse().unwrap(),
                &[jiff::Timestamp::MAX, jiff::Timestamp::MIN],
            ),
            kind: rng.pick(&kinds),
            value_column: rng
                .mostly(
                    None,
                    &[Some("value"), Some("dst_ip"), Some(""), Some("nope")],
                )
                .map(str::to_string),
            confidence: rng.mostly(70, &[0, 100, 101, 255]),
            ttl_secs: rng.mostly(Some(86_400), &[None, Some(0), Some(u64::MAX)]),
        };
        let decoded = decode_feed(data, &ctx);
        let last_line = data.split(|b| *b == b'\n').count();
        for (line, e) in &decoded.rejected {
            if *line > last_line {
                return Err(format!("rejected line {line} of a {last_line}-line feed"));
            }
            explained(e)?;
        }
        for item in &decoded.items {
            let ind = item
                .to_indicator()
                .map_err(|e| format!("a feed item is not a valid indicator: {e}"))?;
            round_trip(&Input::Indicator(ind))?;
        }
        Ok(if decoded.rejected.is_empty() {
            Ok(())
        } else {
            Err(decoded.rejected[0].1.code.as_str())
        })
    });
}

/// The driver itself: a case is a pure function of (seed, decoder, number), and the
/// mutations do produce both accepted and refused inputs.
#[test]
fn cases_are_reproducible_and_varied() {
    let seeds = canonical_seeds(Topic::SensorEvents);
    let make = |case| input(&mut Rng::for_case(7, "x", case), &seeds, true);
    assert_eq!(make(42), make(42));
    let all: Vec<Vec<u8>> = (0..500).map(make).collect();
    let distinct: std::collections::BTreeSet<&Vec<u8>> = all.iter().collect();
    assert!(distinct.len() > 450, "{} distinct of 500", distinct.len());
    let accepted = all
        .iter()
        .filter(|d| decode_record(Topic::SensorEvents, d).is_ok())
        .count();
    assert!(
        accepted > 10 && accepted < 450,
        "{accepted} of 500 accepted"
    );
    // Every seed is valid: mutations start from records that reach validation.
    for topic in Topic::INPUTS {
        for s in canonical_seeds(topic) {
            decode_record(topic, &s)
                .unwrap_or_else(|e| panic!("{topic} seed {}: {e}", String::from_utf8_lossy(&s)));
        }
    }
}
