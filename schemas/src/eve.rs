//! Suricata EVE JSON records (one per line, as in `eve.json`) decoded into canonical
//! [`SensorEvent`]s.
//!
//! Semantics (field names follow Suricata's "Eve JSON Format" documentation):
//! - Common fields: `timestamp` (Suricata's `2009-11-24T21:27:09.534255+0100`, or RFC 3339;
//!   a timestamp without a UTC offset is rejected because the instant is unknown),
//!   `flow_id`, `event_type`, `src_ip`, `src_port`, `dest_ip`, `dest_port`, `proto`, and
//!   `host` (the sensor name, used as `sensor_id` when it is a valid id, else the registry's).
//!   An `@cee:` syslog prefix is skipped.
//! - Event types read: `alert` → [`EventKind::IdsAlert`] (signature = `alert.signature`),
//!   `dns` → [`EventKind::Dns`], `http` → [`EventKind::Http`], `tls` → [`EventKind::Tls`],
//!   `flow` → [`EventKind::Flow`], and `fileinfo` → [`EventKind::Flow`] carrying the file's
//!   MD5/SHA-1/SHA-256 (so partner hash indicators can match). Any other type (`stats`,
//!   `anomaly`, `smb`…) is [`ErrorCode::UnsupportedFormat`] naming it.
//! - Observables: `domain` from `http.hostname`, else `tls.sni`, else the DNS name
//!   (`dns.rrname` in versions 1-2, `dns.queries[0].rrname` in version 3,
//!   `dns.query[0].rrname` in alert metadata of Suricata 7, `dns.answers[0].rrname` in
//!   version 2 answers without a top-level name); alerts carry these sub-objects as metadata.
//!   `url` is `http://` + hostname (+ `:http_port`) + `http.url`, or `http.url` when it is
//!   already absolute. These values are copied from traffic and are attacker-controlled: one
//!   that is not a valid domain or URL is left out and the event is kept, since its addresses
//!   still matter. Fields the sensor computes itself (addresses, ports, timestamp, hashes,
//!   signature, protocol) are strict: a bad one rejects the record, naming the field.
//! - `victim_ip` is the client when the record says which side the client is: `dns`
//!   (`src_ip`, except version-3 responses, which Suricata 8 logs from the resolver, so
//!   `dest_ip`), `http` and `tls` (`src_ip`). Alerts, flows and files leave it empty: their
//!   direction says nothing about who the victim is.
//! - `event_id` = `eve:<flow_id or ->:<event_type>:<first 16 hex digits of the SHA-256 of
//!   the line>` (the line without surrounding blanks), deterministic and unique per record.
//! - The result went through [`SensorEvent::normalize`] and [`SensorEvent::validate`].

use std::net::IpAddr;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::decode::{DecodeError, ErrorCode};
use crate::event::{EventKind, FileHashes, SensorEvent};
use crate::indicator::IndicatorKind;
use crate::validate::{self, ValidationError};
use crate::{SCHEMA_VERSION, Timestamp};

/// The sensor registry's entry for the sensor whose records are decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorInfo {
    /// Id of the sensor, used when the record has no valid `host`.
    pub sensor_id: String,
    /// Country of the sensor (ISO 3166-1 alpha-2).
    pub country: String,
}

/// The EVE `event_type`s this decoder reads.
pub const SUPPORTED_EVENT_TYPES: [&str; 6] = ["alert", "dns", "http", "tls", "flow", "fileinfo"];

/// Longest excerpt of a value quoted in an error message.
const MAX_QUOTE_CHARS: usize = 80;

/// The fields Fusion reads; every other field of the record is ignored.
#[derive(Deserialize)]
struct Record {
    timestamp: String,
    flow_id: Option<u64>,
    src_ip: Option<IpAddr>,
    src_port: Option<u16>,
    dest_ip: Option<IpAddr>,
    dest_port: Option<u16>,
    proto: Option<String>,
    host: Option<String>,
    alert: Option<Alert>,
    dns: Option<Dns>,
    http: Option<Http>,
    tls: Option<Tls>,
    fileinfo: Option<Fileinfo>,
}

#[derive(Deserialize)]
struct Alert {
    signature: Option<String>,
}

#[derive(Deserialize)]
struct Dns {
    #[serde(rename = "type")]
    message_type: Option<String>,
    version: Option<u64>,
    rrname: Option<String>,
    queries: Option<Vec<ResourceRecord>>,
    query: Option<Vec<ResourceRecord>>,
    answers: Option<Vec<ResourceRecord>>,
}

#[derive(Deserialize)]
struct ResourceRecord {
    rrname: Option<String>,
}

#[derive(Deserialize)]
struct Http {
    hostname: Option<String>,
    url: Option<String>,
    http_port: Option<u16>,
}

#[derive(Deserialize)]
struct Tls {
    sni: Option<String>,
}

#[derive(Deserialize)]
struct Fileinfo {
    md5: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
}

impl Dns {
    /// The queried name, wherever this DNS logging version puts it.
    fn name(&self) -> Option<&str> {
        fn first(v: &Option<Vec<ResourceRecord>>) -> Option<&str> {
            v.as_ref()
                .and_then(|rrs| rrs.first())
                .and_then(|rr| rr.rrname.as_deref())
        }
        self.rrname
            .as_deref()
            .or_else(|| first(&self.queries))
            .or_else(|| first(&self.query))
            .or_else(|| first(&self.answers))
    }

    /// Version 3 responses are logged from the resolver's side.
    fn logged_by_resolver(&self) -> bool {
        self.version == Some(3) && self.message_type.as_deref() == Some("response")
    }
}

/// Decodes one EVE record seen by `sensor` into a canonical, validated sensor event.
pub fn decode_eve(line: &[u8], sensor: &SensorInfo) -> Result<SensorEvent, DecodeError> {
    check_sensor(sensor)?;
    let line = line.trim_ascii();
    let text = std::str::from_utf8(line).map_err(|e| {
        DecodeError::new(
            ErrorCode::InvalidUtf8,
            None,
            format!("byte {} is not valid UTF-8", e.valid_up_to()),
        )
    })?;
    let json = text.strip_prefix("@cee:").unwrap_or(text);
    let value: Value = serde_json::from_str(json)
        .map_err(|e| DecodeError::new(ErrorCode::MalformedJson, None, e.to_string()))?;
    let Value::Object(obj) = &value else {
        return Err(DecodeError::new(
            ErrorCode::WrongType,
            None,
            "an EVE record is a JSON object",
        ));
    };
    let event_type = match obj.get("event_type") {
        None | Some(Value::Null) => {
            return Err(DecodeError::new(
                ErrorCode::MissingField,
                Some("event_type".into()),
                "missing field `event_type`",
            ));
        }
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            return Err(DecodeError::new(
                ErrorCode::WrongType,
                Some("event_type".into()),
                "expected a string",
            ));
        }
    };
    let kind = match event_type {
        "alert" => EventKind::IdsAlert,
        "dns" => EventKind::Dns,
        "http" => EventKind::Http,
        "tls" => EventKind::Tls,
        "flow" | "fileinfo" => EventKind::Flow,
        other => {
            return Err(DecodeError::new(
                ErrorCode::UnsupportedFormat,
                Some("event_type".into()),
                format!(
                    "EVE event type {} is not decoded; Fusion reads {}",
                    quote(other),
                    SUPPORTED_EVENT_TYPES.join(", ")
                ),
            ));
        }
    };
    let rec: Record = typed(&value)?;
    let observed_at = parse_timestamp(&rec.timestamp)?;

    let signature = if kind == EventKind::IdsAlert {
        let alert = rec.alert.as_ref().ok_or_else(|| {
            DecodeError::new(
                ErrorCode::MissingField,
                Some("alert".into()),
                "missing field `alert` in an alert record",
            )
        })?;
        alert.signature.clone()
    } else {
        None
    };
    let file_hashes = match (&rec.fileinfo, event_type) {
        (Some(f), "fileinfo") => FileHashes {
            md5: sensor_hash("fileinfo.md5", IndicatorKind::Md5, &f.md5)?,
            sha1: sensor_hash("fileinfo.sha1", IndicatorKind::Sha1, &f.sha1)?,
            sha256: sensor_hash("fileinfo.sha256", IndicatorKind::Sha256, &f.sha256)?,
        },
        _ => FileHashes::default(),
    };
    let domain = rec
        .http
        .as_ref()
        .and_then(|h| h.hostname.as_deref())
        .and_then(traffic_domain)
        .or_else(|| {
            rec.tls
                .as_ref()
                .and_then(|t| t.sni.as_deref())
                .and_then(traffic_domain)
        })
        .or_else(|| {
            rec.dns
                .as_ref()
                .and_then(Dns::name)
                .and_then(traffic_domain)
        });
    let url = rec.http.as_ref().and_then(traffic_url);
    let victim_ip = match event_type {
        "dns" if rec.dns.as_ref().is_some_and(Dns::logged_by_resolver) => rec.dest_ip,
        "dns" | "http" | "tls" => rec.src_ip,
        _ => None,
    };
    let host = rec
        .host
        .as_deref()
        .filter(|h| validate::id("host", h).is_ok());
    let digest = Sha256::digest(line);
    let event_id = format!(
        "eve:{}:{event_type}:{}",
        rec.flow_id
            .map_or_else(|| "-".to_string(), |f| f.to_string()),
        hex::encode(&digest[..8])
    );

    let mut ev = SensorEvent {
        schema_version: SCHEMA_VERSION,
        event_id,
        sensor_id: host.unwrap_or(&sensor.sensor_id).to_string(),
        country: sensor.country.clone(),
        observed_at,
        kind,
        src_ip: rec.src_ip,
        src_port: rec.src_port,
        dst_ip: rec.dest_ip,
        dst_port: rec.dest_port,
        proto: rec.proto,
        domain,
        url,
        file_hashes,
        email: None,
        wallet: None,
        victim_ip,
        signature,
        purchase: None,
    };
    ev.normalize().map_err(to_eve_field)?;
    ev.validate().map_err(to_eve_field)?;
    Ok(ev)
}

fn check_sensor(sensor: &SensorInfo) -> Result<(), DecodeError> {
    validate::id("sensor_id", &sensor.sensor_id)
        .and_then(|()| validate::country("country", &sensor.country))
        .map_err(|e| {
            DecodeError::new(
                ErrorCode::InvalidValue,
                Some(format!("context.{}", e.field)),
                format!("the sensor registry entry is invalid: {}", e.reason),
            )
        })
}

/// Names a field of the canonical event by the EVE field it came from.
fn to_eve_field(e: ValidationError) -> DecodeError {
    let field = match e.field.as_str() {
        "signature" => "alert.signature".to_string(),
        "file_hashes.md5" => "fileinfo.md5".to_string(),
        "file_hashes.sha1" => "fileinfo.sha1".to_string(),
        "file_hashes.sha256" => "fileinfo.sha256".to_string(),
        f => f.to_string(),
    };
    DecodeError::new(ErrorCode::InvalidValue, Some(field), e.reason)
}

/// Deserializes the typed view of the record, naming the field that does not fit.
fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        let code = if msg.starts_with("missing field") {
            ErrorCode::MissingField
        } else if msg.starts_with("invalid type") {
            ErrorCode::WrongType
        } else {
            ErrorCode::InvalidValue
        };
        // serde names a missing field only in its message.
        let missing = msg
            .split('`')
            .nth(1)
            .filter(|_| code == ErrorCode::MissingField);
        let field = match (path.as_str(), missing) {
            (".", Some(f)) => Some(f.to_string()),
            (".", None) => None,
            (p, Some(f)) => Some(format!("{p}.{f}")),
            (p, None) => Some(p.to_string()),
        };
        DecodeError::new(code, field, msg)
    })
}

/// Suricata's own timestamp format, or RFC 3339.
fn parse_timestamp(s: &str) -> Result<Timestamp, DecodeError> {
    Timestamp::strptime("%Y-%m-%dT%H:%M:%S%.f%z", s)
        .or_else(|_| s.parse::<Timestamp>())
        .map_err(|_| {
            DecodeError::new(
                ErrorCode::InvalidValue,
                Some("timestamp".into()),
                format!(
                    "{} is not a timestamp with a UTC offset such as \
                     2009-11-24T21:27:09.534255+0100 or RFC 3339",
                    quote(s)
                ),
            )
        })
}

/// A hash the sensor computed: bad means a broken sensor, so the record is rejected.
fn sensor_hash(
    field: &str,
    kind: IndicatorKind,
    v: &Option<String>,
) -> Result<Option<String>, DecodeError> {
    v.as_deref()
        .map(|h| {
            kind.normalize(h)
                .map_err(|r| DecodeError::new(ErrorCode::InvalidValue, Some(field.into()), r))
        })
        .transpose()
}

/// A name seen in traffic, kept only if it is a valid domain name.
fn traffic_domain(name: &str) -> Option<String> {
    IndicatorKind::Domain.normalize(name).ok()
}

/// The URL an HTTP transaction requested, if hostname and path make a valid one.
fn traffic_url(h: &Http) -> Option<String> {
    let path = h.url.as_deref()?;
    let lower = path.get(..8).unwrap_or(path).to_ascii_lowercase();
    let candidate = if lower.starts_with("http://") || lower.starts_with("https://") {
        path.to_string()
    } else if path.starts_with('/') {
        let hostname = h.hostname.as_deref()?;
        // Only a plain name or address may become the authority: `a@b` or `a/b` would
        // let the client choose which host the URL names.
        let host = match hostname.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            Ok(IpAddr::V4(v4)) => v4.to_string(),
            Err(_) => traffic_domain(hostname)?,
        };
        let port = h
            .http_port
            .filter(|p| *p != 80)
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        format!("http://{host}{port}{path}")
    } else {
        return None;
    };
    IndicatorKind::Url.normalize(&candidate).ok()
}

fn quote(s: &str) -> String {
    if s.chars().count() <= MAX_QUOTE_CHARS {
        format!("{s:?}")
    } else {
        let cut: String = s.chars().take(MAX_QUOTE_CHARS).collect();
        format!("{cut:?}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sensor() -> SensorInfo {
        SensorInfo {
            sensor_id: "fr-ids-1".into(),
            country: "FR".into(),
        }
    }

    fn decode(line: &str) -> SensorEvent {
        decode_eve(line.as_bytes(), &sensor()).expect("the record decodes")
    }

    fn reject(line: &str) -> DecodeError {
        decode_eve(line.as_bytes(), &sensor()).expect_err("the record is rejected")
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("a valid address"))
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("a valid timestamp")
    }

    // Records as Suricata writes them (shapes from the "Eve JSON Format" documentation).
    const ALERT: &str = r#"{"timestamp":"2017-04-07T22:24:37.251547+0100","flow_id":586497171462735,"pcap_cnt":53381,"event_type":"alert","src_ip":"192.168.2.14","src_port":50096,"dest_ip":"209.53.113.5","dest_port":80,"proto":"TCP","metadata":{"flowbits":["http.dottedquadhost"]},"tx_id":4,"alert":{"action":"allowed","gid":1,"signature_id":2018358,"rev":10,"signature":"ET HUNTING GENERIC SUSPICIOUS POST to Dotted Quad with Fake Browser 1","category":"Potentially Bad Traffic","severity":2},"app_proto":"http"}"#;
    const ALERT_WITH_HTTP: &str = r#"{"timestamp":"2024-05-02T08:15:42.118362+0200","flow_id":1219571311958406,"in_iface":"eth0","event_type":"alert","src_ip":"10.20.0.15","src_port":49812,"dest_ip":"203.0.113.50","dest_port":8080,"proto":"TCP","host":"paris-ids-2","alert":{"action":"allowed","gid":1,"signature_id":2024897,"rev":3,"signature":"ET MALWARE Win32/Emotet CnC Activity (POST)","category":"A Network Trojan was detected","severity":1},"http":{"hostname":"C2.Evil.Example","http_port":8080,"url":"/wp-content/gate.php?id=42","http_user_agent":"Mozilla/4.0 (compatible; MSIE 7.0)","http_method":"POST","protocol":"HTTP/1.1","status":200,"length":148},"app_proto":"http","flow":{"pkts_toserver":5,"pkts_toclient":4,"bytes_toserver":812,"bytes_toclient":640,"start":"2024-05-02T08:15:41.998011+0200"}}"#;
    const DNS_V2_QUERY: &str = r#"{"timestamp":"2024-05-02T08:15:40.001122+0200","flow_id":1219571311958100,"event_type":"dns","src_ip":"10.20.0.15","src_port":53344,"dest_ip":"10.20.0.2","dest_port":53,"proto":"UDP","dns":{"type":"query","id":16000,"rrname":"Twitter.com","rrtype":"A","tx_id":0,"opcode":0}}"#;
    const DNS_V2_ANSWER: &str = r#"{"timestamp":"2024-05-02T08:15:40.031122+0200","flow_id":1219571311958100,"event_type":"dns","src_ip":"10.20.0.15","src_port":53344,"dest_ip":"10.20.0.2","dest_port":53,"proto":"UDP","dns":{"version":2,"type":"answer","id":45444,"flags":"8180","qr":true,"rd":true,"ra":true,"opcode":0,"rcode":"NOERROR","answers":[{"rrname":"www.suricata-ids.org","rrtype":"CNAME","ttl":3324,"rdata":"suricata-ids.org"},{"rrname":"suricata-ids.org","rrtype":"A","ttl":10,"rdata":"192.0.78.24"},{"rrname":"suricata-ids.org","rrtype":"A","ttl":10,"rdata":"192.0.78.25"}]}}"#;
    const DNS_V3_REQUEST: &str = r#"{"timestamp":"2025-06-10T14:02:11.500201+0000","flow_id":2094387713206785,"event_type":"dns","src_ip":"10.20.0.15","src_port":41122,"dest_ip":"10.20.0.2","dest_port":53,"proto":"UDP","dns":{"version":3,"type":"request","tx_id":0,"id":0,"flags":"100","rd":true,"opcode":0,"rcode":"NOERROR","queries":[{"rrname":"www.suricata.io","rrtype":"A"}]}}"#;
    const DNS_V3_RESPONSE: &str = r#"{"timestamp":"2025-06-10T14:02:11.530201+0000","flow_id":2094387713206785,"event_type":"dns","src_ip":"10.20.0.2","src_port":53,"dest_ip":"10.20.0.15","dest_port":41122,"proto":"UDP","dns":{"version":3,"type":"response","tx_id":1,"id":0,"flags":"8180","qr":true,"rd":true,"ra":true,"opcode":0,"rcode":"NOERROR","queries":[{"rrname":"www.suricata.io","rrtype":"A"}],"answers":[{"rrname":"www.suricata.io","rrtype":"CNAME","ttl":3597,"rdata":"suricata.io"},{"rrname":"suricata.io","rrtype":"A","ttl":597,"rdata":"35.212.0.44"}]}}"#;
    const HTTP: &str = r#"{"timestamp":"2015-03-25T16:40:41.123456+0100","flow_id":412547343494194,"event_type":"http","src_ip":"10.20.0.15","src_port":49185,"dest_ip":"192.0.2.80","dest_port":80,"proto":"TCP","tx_id":0,"http":{"hostname":"www.digip.org","url":"/jansson/releases/jansson-2.6.tar.gz","http_user_agent":"Wget/1.13.4 (linux-gnu)","http_content_type":"application/x-gzip","http_method":"GET","protocol":"HTTP/1.1","status":200,"length":426231}}"#;
    const TLS: &str = r#"{"timestamp":"2017-02-01T10:48:43.000112+0100","flow_id":201217772575257,"event_type":"tls","src_ip":"10.20.0.15","src_port":49323,"dest_ip":"172.217.22.14","dest_port":443,"proto":"TCP","tls":{"subject":"C=US, ST=California, L=Mountain View, O=Google Inc, CN=*.google.com","issuerdn":"C=US, O=Google Inc, CN=Google Internet Authority G2","serial":"0C:00:99:B7:D7:54:C9:F6:77:26:31:7E:BA:EA:7C:1C","fingerprint":"8f:51:12:06:a0:cc:4e:cd:e8:a3:8b:38:f8:87:59:e5:af:95:ca:cd","sni":"calendar.google.com","version":"TLS 1.2","notbefore":"2017-01-04T10:48:43","notafter":"2017-03-29T10:18:00"}}"#;
    const FLOW: &str = r#"{"timestamp":"2019-05-28T23:35:28.071281+0200","flow_id":1346552498165328,"event_type":"flow","src_ip":"10.20.0.15","src_port":50412,"dest_ip":"198.51.100.23","dest_port":443,"proto":"TCP","app_proto":"tls","flow":{"pkts_toserver":23,"pkts_toclient":21,"bytes_toserver":4884,"bytes_toclient":7392,"start":"2019-05-28T23:32:29.025256+0200","end":"2019-05-28T23:35:28.071281+0200","age":179,"state":"closed","reason":"timeout","alerted":false},"tcp":{"tcp_flags":"1b","syn":true,"fin":true,"psh":true,"ack":true,"state":"closed"}}"#;
    const FILEINFO: &str = r#"{"timestamp":"2015-03-25T16:40:41.623456+0100","flow_id":412547343494194,"event_type":"fileinfo","src_ip":"192.0.2.80","src_port":80,"dest_ip":"10.20.0.15","dest_port":49185,"proto":"TCP","http":{"hostname":"www.digip.org","url":"/jansson/releases/jansson-2.6.tar.gz","http_user_agent":"Wget/1.13.4 (linux-gnu)","http_content_type":"application/x-gzip","http_method":"GET","protocol":"HTTP/1.1","status":200,"length":426231},"app_proto":"http","fileinfo":{"filename":"/jansson/releases/jansson-2.6.tar.gz","magic":"gzip compressed data, from Unix","gaps":false,"state":"CLOSED","md5":"7A2B3C4D5E6F708192A3B4C5D6E7F809","sha1":"0123456789ABCDEF0123456789ABCDEF01234567","sha256":"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855","stored":false,"size":426231,"tx_id":0}}"#;
    const STATS: &str = r#"{"timestamp":"2024-05-02T08:16:00.000113+0200","event_type":"stats","stats":{"uptime":30,"capture":{"kernel_packets":1024,"kernel_drops":0}}}"#;
    const ANOMALY: &str = r#"{"timestamp":"2016-01-11T05:10:54.612110-0800","flow_id":412547343494194,"pcap_cnt":1391293,"event_type":"anomaly","src_ip":"192.168.122.149","src_port":49324,"dest_ip":"69.195.71.174","dest_port":443,"proto":"TCP","app_proto":"tls","anomaly":{"type":"applayer","event":"APPLAYER_DETECT_PROTOCOL_ONLY_ONE_DIRECTION","layer":"proto_detect"}}"#;

    const SAMPLES: [&str; 10] = [
        ALERT,
        ALERT_WITH_HTTP,
        DNS_V2_QUERY,
        DNS_V2_ANSWER,
        DNS_V3_REQUEST,
        DNS_V3_RESPONSE,
        HTTP,
        TLS,
        FLOW,
        FILEINFO,
    ];

    #[test]
    fn an_alert_becomes_an_ids_alert_with_its_signature() {
        let ev = decode(ALERT);
        assert_eq!(ev.kind, EventKind::IdsAlert);
        assert_eq!(
            ev.signature.as_deref(),
            Some("ET HUNTING GENERIC SUSPICIOUS POST to Dotted Quad with Fake Browser 1")
        );
        assert_eq!(ev.observed_at, ts("2017-04-07T21:24:37.251547Z"));
        assert_eq!((ev.src_ip, ev.src_port), (ip("192.168.2.14"), Some(50096)));
        assert_eq!((ev.dst_ip, ev.dst_port), (ip("209.53.113.5"), Some(80)));
        assert_eq!(ev.proto.as_deref(), Some("TCP"));
        assert_eq!(ev.sensor_id, "fr-ids-1");
        assert_eq!(ev.country, "FR");
        assert_eq!(ev.victim_ip, None);
        assert_eq!((ev.domain.as_deref(), ev.url.as_deref()), (None, None));
        assert!(ev.event_id.starts_with("eve:586497171462735:alert:"));
        assert_eq!(ev.event_id.len(), "eve:586497171462735:alert:".len() + 16);
        assert_eq!(ev.validate(), Ok(()));
    }

    #[test]
    fn alert_metadata_fills_domain_and_url_and_host_names_the_sensor() {
        let ev = decode(ALERT_WITH_HTTP);
        assert_eq!(ev.kind, EventKind::IdsAlert);
        assert_eq!(ev.domain.as_deref(), Some("c2.evil.example"));
        assert_eq!(
            ev.url.as_deref(),
            Some("http://c2.evil.example:8080/wp-content/gate.php?id=42")
        );
        assert_eq!(ev.sensor_id, "paris-ids-2");
        assert_eq!(ev.victim_ip, None);
        let tls_alert = ALERT.replace(
            r#""app_proto":"http""#,
            r#""app_proto":"tls","tls":{"sni":"Login.Evil.Example","version":"TLS 1.3"}"#,
        );
        assert_eq!(
            decode(&tls_alert).domain.as_deref(),
            Some("login.evil.example")
        );
        let dns_alert_v7 = ALERT.replace(
            r#""app_proto":"http""#,
            r#""dns":{"query":[{"type":"query","id":8166,"rrname":"dga-x1.evil.example","rrtype":"A","tx_id":0}]}"#,
        );
        assert_eq!(
            decode(&dns_alert_v7).domain.as_deref(),
            Some("dga-x1.evil.example")
        );
    }

    #[test]
    fn dns_records_of_every_logging_version_give_the_name_and_the_client() {
        let q = decode(DNS_V2_QUERY);
        assert_eq!(q.kind, EventKind::Dns);
        assert_eq!(q.domain.as_deref(), Some("twitter.com"));
        assert_eq!(q.victim_ip, ip("10.20.0.15"));
        let a = decode(DNS_V2_ANSWER);
        assert_eq!(a.domain.as_deref(), Some("www.suricata-ids.org"));
        assert_eq!(a.victim_ip, ip("10.20.0.15"));
        let r = decode(DNS_V3_REQUEST);
        assert_eq!(r.domain.as_deref(), Some("www.suricata.io"));
        assert_eq!(r.victim_ip, ip("10.20.0.15"));
        // Suricata 8 logs version-3 responses from the resolver: the client is dest_ip.
        let r = decode(DNS_V3_RESPONSE);
        assert_eq!(r.domain.as_deref(), Some("www.suricata.io"));
        assert_eq!(r.src_ip, ip("10.20.0.2"));
        assert_eq!(r.victim_ip, ip("10.20.0.15"));
    }

    #[test]
    fn http_gives_domain_and_url() {
        let ev = decode(HTTP);
        assert_eq!(ev.kind, EventKind::Http);
        assert_eq!(ev.domain.as_deref(), Some("www.digip.org"));
        assert_eq!(
            ev.url.as_deref(),
            Some("http://www.digip.org/jansson/releases/jansson-2.6.tar.gz")
        );
        assert_eq!(ev.victim_ip, ip("10.20.0.15"));
        // A dotted-quad Host: no domain, but the URL names the address.
        let dotted = HTTP.replace(
            r#""hostname":"www.digip.org""#,
            r#""hostname":"192.0.2.80""#,
        );
        let ev = decode(&dotted);
        assert_eq!(ev.domain, None);
        assert_eq!(
            ev.url.as_deref(),
            Some("http://192.0.2.80/jansson/releases/jansson-2.6.tar.gz")
        );
        // A proxy request carries an absolute URL.
        let proxied = HTTP.replace(
            r#""url":"/jansson/releases/jansson-2.6.tar.gz""#,
            r#""url":"http://Mirror.Example/jansson.tar.gz""#,
        );
        assert_eq!(
            decode(&proxied).url.as_deref(),
            Some("http://mirror.example/jansson.tar.gz")
        );
        // Host: www.test.org:1337
        let port = HTTP.replace(
            r#""hostname":"www.digip.org""#,
            r#""http_port":1337,"hostname":"www.test.org""#,
        );
        assert_eq!(
            decode(&port).url.as_deref(),
            Some("http://www.test.org:1337/jansson/releases/jansson-2.6.tar.gz")
        );
    }

    #[test]
    fn tls_gives_the_sni() {
        let ev = decode(TLS);
        assert_eq!(ev.kind, EventKind::Tls);
        assert_eq!(ev.domain.as_deref(), Some("calendar.google.com"));
        assert_eq!(ev.victim_ip, ip("10.20.0.15"));
        assert_eq!(ev.url, None);
    }

    #[test]
    fn a_flow_is_a_flow() {
        let ev = decode(FLOW);
        assert_eq!(ev.kind, EventKind::Flow);
        assert_eq!((ev.dst_ip, ev.dst_port), (ip("198.51.100.23"), Some(443)));
        assert_eq!((ev.domain, ev.url, ev.victim_ip), (None, None, None));
        assert_eq!(ev.observed_at, ts("2019-05-28T21:35:28.071281Z"));
    }

    #[test]
    fn fileinfo_is_a_flow_with_the_file_hashes() {
        let ev = decode(FILEINFO);
        assert_eq!(ev.kind, EventKind::Flow);
        assert_eq!(
            ev.file_hashes.md5.as_deref(),
            Some("7a2b3c4d5e6f708192a3b4c5d6e7f809")
        );
        assert_eq!(
            ev.file_hashes.sha1.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        assert_eq!(
            ev.file_hashes.sha256.as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(ev.domain.as_deref(), Some("www.digip.org"));
        assert_eq!(ev.victim_ip, None);
        let bad = FILEINFO.replace("7A2B3C4D5E6F708192A3B4C5D6E7F809", "not-a-hash");
        let e = reject(&bad);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidValue, Some("fileinfo.md5"))
        );
    }

    #[test]
    fn other_event_types_are_unsupported_and_named() {
        for (line, ty) in [(STATS, "stats"), (ANOMALY, "anomaly")] {
            let e = reject(line);
            assert_eq!(
                (e.code, e.field.as_deref()),
                (ErrorCode::UnsupportedFormat, Some("event_type"))
            );
            assert!(e.detail.contains(&format!("\"{ty}\"")), "{}", e.detail);
        }
    }

    #[test]
    fn event_ids_are_deterministic_and_unique_per_record() {
        assert_eq!(decode(DNS_V2_QUERY).event_id, decode(DNS_V2_QUERY).event_id);
        // A line terminator does not change the id.
        assert_eq!(
            decode(DNS_V2_QUERY).event_id,
            decode(&format!("{DNS_V2_QUERY}\r\n")).event_id
        );
        // Same flow, same type, another record.
        assert_ne!(
            decode(HTTP).event_id,
            decode(&HTTP.replace("16:40:41.123456", "16:40:42.123456")).event_id
        );
        let no_flow = DNS_V2_QUERY.replace(r#""flow_id":1219571311958100,"#, "");
        assert!(decode(&no_flow).event_id.starts_with("eve:-:dns:"));
    }

    #[test]
    fn timestamps_in_rfc3339_are_accepted_and_without_offset_rejected() {
        let rfc = DNS_V2_QUERY.replace(
            "2024-05-02T08:15:40.001122+0200",
            "2024-05-02T06:15:40.001122Z",
        );
        assert_eq!(decode(&rfc).observed_at, decode(DNS_V2_QUERY).observed_at);
        for bad in [
            "2009-11-24T21:27:09.534255",
            "yesterday",
            "2024-13-02T08:15:40+0200",
            "",
        ] {
            let line = DNS_V2_QUERY.replace("2024-05-02T08:15:40.001122+0200", bad);
            let e = reject(&line);
            assert_eq!(
                (e.code, e.field.as_deref()),
                (ErrorCode::InvalidValue, Some("timestamp")),
                "{bad}"
            );
        }
    }

    #[test]
    fn malformed_records_name_the_field() {
        let e = reject(&ALERT[..ALERT.len() - 30]);
        assert_eq!((e.code, e.field), (ErrorCode::MalformedJson, None));
        let e = reject(&format!("{DNS_V2_QUERY}\n{DNS_V2_QUERY}"));
        assert_eq!(e.code, ErrorCode::MalformedJson);
        let e = reject(&ALERT.replace(r#""src_port":50096"#, r#""src_port":"eighty""#));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::WrongType, Some("src_port"))
        );
        let e = reject(&ALERT.replace(r#""src_port":50096"#, r#""src_port":70000"#));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidValue, Some("src_port"))
        );
        let e = reject(&ALERT.replace("209.53.113.5", "x.x.250.50"));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidValue, Some("dest_ip"))
        );
        let e = reject(&ALERT.replace(r#""timestamp":"2017-04-07T22:24:37.251547+0100","#, ""));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::MissingField, Some("timestamp"))
        );
        let e = reject(&ALERT.replace(r#""event_type":"alert","#, ""));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::MissingField, Some("event_type"))
        );
        let e = reject(&ALERT.replace(r#""event_type":"alert""#, r#""event_type":["alert"]"#));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::WrongType, Some("event_type"))
        );
        let e = reject(&DNS_V3_REQUEST.replace(
            r#""rrname":"www.suricata.io""#,
            r#""rrname":["www.suricata.io"]"#,
        ));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::WrongType, Some("dns.queries[0].rrname"))
        );
        let e = reject(&HTTP.replace(r#""hostname":"www.digip.org""#, r#""hostname":42"#));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::WrongType, Some("http.hostname"))
        );
        let e = reject(&ALERT.replace(r#""alert":{"#, r#""alarm":{"#));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::MissingField, Some("alert"))
        );
        let e = reject(&ALERT.replace(r#""proto":"TCP""#, r#""proto":"TCP; rm -rf""#));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidValue, Some("proto"))
        );
        assert_eq!(reject("[1,2,3]").code, ErrorCode::WrongType);
        assert_eq!(reject("").code, ErrorCode::MalformedJson);
        let e = decode_eve(b"{\"event_type\":\"dns\xff\"}", &sensor()).expect_err("bad utf-8");
        assert_eq!(e.code, ErrorCode::InvalidUtf8);
    }

    #[test]
    fn hostile_strings_from_traffic_are_left_out() {
        // Control characters, a bidi override and an authority trick in the Host header.
        for hostile in [
            r"evil\u0007.example",
            r"evil.example\r\nX-Injected: 1",
            r"evil\u202e.example",
            "good.example@evil.example",
            "evil.example/..",
            "",
        ] {
            let line = HTTP.replace(
                r#""hostname":"www.digip.org""#,
                &format!(r#""hostname":"{hostile}""#),
            );
            let ev = decode(&line);
            assert_eq!(
                (ev.domain.as_deref(), ev.url.as_deref()),
                (None, None),
                "{hostile}"
            );
            assert_eq!(ev.dst_ip, ip("192.0.2.80"), "the addresses still count");
        }
        // A request line with a CRLF injection stays one canonical URL.
        let line = HTTP.replace(
            r#""url":"/jansson/releases/jansson-2.6.tar.gz""#,
            r#""url":"/a\r\nSet-Cookie: x=1\u0000""#,
        );
        let url = decode(&line).url.expect("the URL is kept, escaped");
        assert!(!url.chars().any(char::is_control), "{url:?}");
        // A hostile DNS name or SNI is left out too.
        let ev = decode(&DNS_V2_QUERY.replace("Twitter.com", r"tw\u0000itter.com"));
        assert_eq!(ev.domain, None);
        let ev = decode(&TLS.replace("calendar.google.com", r"calendar.google.com\u001b[31m"));
        assert_eq!(ev.domain, None);
        // A hostile sensor name falls back to the registry's id.
        let ev = decode(&ALERT_WITH_HTTP.replace("paris-ids-2", r"paris\u202eids"));
        assert_eq!(ev.sensor_id, "fr-ids-1");
        // The signature is the sensor's own text: an escape sequence in it is a broken rule.
        let e = reject(&ALERT.replace("ET HUNTING", r"\u001b[2J ET HUNTING"));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidValue, Some("alert.signature"))
        );
    }

    #[test]
    fn a_syslog_prefix_is_skipped() {
        assert_eq!(
            decode(&format!("@cee: {TLS}")).domain.as_deref(),
            Some("calendar.google.com")
        );
    }

    #[test]
    fn an_invalid_registry_entry_is_named() {
        let s = SensorInfo {
            sensor_id: "fr-ids-1".into(),
            country: "France".into(),
        };
        let e = decode_eve(TLS.as_bytes(), &s).expect_err("invalid country");
        assert_eq!(e.field.as_deref(), Some("context.country"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_eve(&bytes, &sensor());
        }

        #[test]
        fn mutated_records_never_panic(which in 0usize..SAMPLES.len(), pos in any::<usize>(), byte in any::<u8>()) {
            let mut b = SAMPLES[which].as_bytes().to_vec();
            let p = pos % b.len();
            b[p] = byte;
            if let Ok(ev) = decode_eve(&b, &sensor()) {
                prop_assert_eq!(ev.validate(), Ok(()));
            }
        }

        #[test]
        fn arbitrary_traffic_strings_never_panic_and_stay_canonical(host in ".{0,64}", path in ".{0,64}", sni in ".{0,64}") {
            let esc = |s: &str| serde_json::to_string(s).expect("a string serializes");
            let http = format!(
                r#"{{"timestamp":"2024-01-01T00:00:00Z","event_type":"http","src_ip":"10.0.0.1","http":{{"hostname":{},"url":{}}}}}"#,
                esc(&host), esc(&path)
            );
            let tls = format!(
                r#"{{"timestamp":"2024-01-01T00:00:00Z","event_type":"tls","tls":{{"sni":{}}}}}"#,
                esc(&sni)
            );
            for line in [http, tls] {
                let ev = decode_eve(line.as_bytes(), &sensor());
                prop_assert!(ev.is_ok(), "{:?}", ev);
                if let Ok(ev) = ev {
                    prop_assert_eq!(ev.validate(), Ok(()));
                }
            }
        }
    }
}
