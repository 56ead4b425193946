//! The seeded record generator: benign traffic, campaigns, indicator releases and bad payloads,
//! merged into one stream in event-time order.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use jiff::Timestamp;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schemas::{
    ActionKind, DeskAction, EventKind, FileHashes, Indicator, IndicatorKind, OsintItem,
    SensorEvent, SourceKind, Topic,
};
use serde::Serialize;

use crate::bad::{self, BadKind};
use crate::truth::{Campaign, Infrastructure, Matcher, Truth};
use crate::world::{self, Sensor, SensorType};

/// 2026-11-23T00:00:00Z, the default start of a scenario.
pub const DEFAULT_START_MS: i64 = 1_795_392_000_000;
/// Latest accepted start (2100-01-01T00:00:00Z); later starts are clamped to it.
const MAX_START_MS: i64 = 4_102_444_800_000;

/// Mean number of event slots between two campaign starts.
pub const CAMPAIGN_EVERY_EVENTS: u64 = 5_000;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioConfig {
    /// Seed of every random choice; the same config gives byte-identical output.
    pub seed: u64,
    /// Number of event slots (sensor events plus bad records); none for an unbounded stream.
    pub events: Option<u64>,
    /// Unix ms of the first record (clamped to 1970..2100).
    pub start_ms: i64,
    /// Event-time density: consecutive event slots are about `1000 / events_per_sec` ms apart.
    pub events_per_sec: u32,
    /// Share of event slots that carry a deliberately bad payload (0 to 1).
    pub bad_record_ratio: f64,
    /// Whether to compute the ground truth of matches as records are emitted. It grows
    /// with every campaign hit; an endless stream (the embedded source) turns it off.
    pub track_truth: bool,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            events: None,
            start_ms: DEFAULT_START_MS,
            events_per_sec: 10_000,
            bad_record_ratio: 0.001,
            track_truth: true,
        }
    }
}

/// One record as it would be published to Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedRecord {
    /// Input topic it belongs to.
    pub topic: Topic,
    /// Message timestamp: the record's natural time (event `observed_at`, indicator
    /// `modified`, OSINT `published`), or the slot time of a bad record.
    pub timestamp_ms: i64,
    /// Message key (sensor id, indicator id, `feed:item`).
    pub key: Option<String>,
    /// The JSON payload (not valid for bad records).
    pub payload: Vec<u8>,
    /// How the payload is damaged, for deliberately bad records.
    pub bad: Option<BadKind>,
}

/// Deterministic scenario generator; an iterator of records in non-decreasing `timestamp_ms`.
///
/// Records come from three sources merged in time order: one record per event slot
/// (a benign event, a campaign hit, or a bad payload), and scheduled indicator versions
/// and OSINT items (releases, confidence updates, revocations), which are emitted before
/// the first slot at or after their time.
#[derive(Debug)]
pub struct Generator {
    start_ms: i64,
    events_per_sec: u64,
    limit: Option<u64>,
    bad_ratio: f64,
    rng: ChaCha8Rng,
    tables: Tables,
    slot: u64,
    order: u64,
    next_campaign_slot: u64,
    campaigns: BTreeMap<u64, CampaignPlan>,
    hits: BTreeMap<(u64, u64), Hit>,
    scheduled: BTreeMap<(i64, u64), Scheduled>,
    osint_items: Vec<u64>,
    truth: Truth,
    matcher: Matcher,
    track_truth: bool,
}

/// Event kinds of benign traffic with their share in percent.
const BENIGN_MIX: [(EventKind, u8); 8] = [
    (EventKind::Flow, 34),
    (EventKind::Dns, 26),
    (EventKind::Http, 14),
    (EventKind::Tls, 12),
    (EventKind::IdsAlert, 5),
    (EventKind::Darknet, 5),
    (EventKind::Email, 3),
    (EventKind::Sinkhole, 1),
];

const SENSOR_TYPES: [SensorType; 6] = [
    SensorType::Ids,
    SensorType::Dns,
    SensorType::Proxy,
    SensorType::Mail,
    SensorType::Darknet,
    SensorType::Sinkhole,
];

fn type_index(t: SensorType) -> usize {
    SENSOR_TYPES.iter().position(|&x| x == t).unwrap_or(0)
}

/// Lookup tables derived from the world once per generator.
#[derive(Debug)]
struct Tables {
    sensors: Vec<Sensor>,
    /// 100 entries: the benign event kind for each percentile.
    kind_table: Vec<EventKind>,
    /// Per sensor type, sensor indexes repeated by their country's weight.
    by_type: Vec<Vec<usize>>,
    /// Per country and sensor type, its sensors.
    by_country_type: Vec<Vec<Vec<usize>>>,
    benign_octets: Vec<u8>,
    /// Per country, the /16 its victims live in and the /16 of its darknet.
    country_prefix: Vec<(u32, u32)>,
    /// Benign file catalogue: (sha256, md5).
    benign_files: Vec<(String, String)>,
}

impl Tables {
    fn new() -> Self {
        let sensors = world::sensors();
        let mut kind_table = Vec::with_capacity(100);
        for (kind, share) in BENIGN_MIX {
            kind_table.extend(std::iter::repeat_n(kind, usize::from(share)));
        }
        let mut by_type = vec![Vec::new(); SENSOR_TYPES.len()];
        let mut by_country_type =
            vec![vec![Vec::new(); SENSOR_TYPES.len()]; world::COUNTRIES.len()];
        for (i, s) in sensors.iter().enumerate() {
            let weight = world::COUNTRIES.get(s.country).map_or(1, |c| c.1);
            let t = type_index(s.sensor_type);
            for _ in 0..weight {
                by_type[t].push(i);
            }
            by_country_type[s.country][t].push(i);
        }
        let benign_octets = world::benign_v4_octets();
        let country_prefix = (0..world::COUNTRIES.len())
            .map(|i| {
                let o1 = u32::from(benign_octets[(i * 7 + 3) % benign_octets.len()]);
                let o2 = ((i * 37 + 11) % 255) as u32;
                ((o1 << 24) | (o2 << 16), (o1 << 24) | ((o2 + 1) << 16))
            })
            .collect();
        // The catalogue is the same for every seed: a fixed world.
        let mut rng = ChaCha8Rng::seed_from_u64(0x0bad_f11e);
        let benign_files = (0..256)
            .map(|_| (random_hex(&mut rng, 32), random_hex(&mut rng, 16)))
            .collect();
        Self {
            sensors,
            kind_table,
            by_type,
            by_country_type,
            benign_octets,
            country_prefix,
            benign_files,
        }
    }

    fn sensor(&self, i: usize) -> Option<&Sensor> {
        self.sensors.get(i)
    }
}

/// A campaign in progress: what its hits need.
#[derive(Debug)]
struct CampaignPlan {
    family: &'static str,
    countries: Vec<usize>,
    /// First address of the campaign's /22: .0/24 is the CIDR indicator, .1/24 its C2
    /// addresses, .2 and .3 other infrastructure.
    block: u32,
    domains: Vec<String>,
    items: Vec<Item>,
    sender: String,
    hits_left: u64,
}

#[derive(Debug, Clone)]
struct Item {
    kind: IndicatorKind,
    value: String,
    /// The address of address items; the network of CIDR items.
    ip: Option<IpAddr>,
    /// The host of URL items.
    host: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Hit {
    campaign: u64,
    item: usize,
}

#[derive(Debug)]
enum Scheduled {
    Partner {
        campaign: u64,
        item: usize,
        indicator: Box<Indicator>,
    },
    Osint {
        campaign: u64,
        item: usize,
        osint: Box<OsintItem>,
    },
}

impl Generator {
    /// A generator for `cfg`; nothing is generated until iterated.
    pub fn new(cfg: ScenarioConfig) -> Self {
        let bad_ratio = if cfg.bad_record_ratio.is_finite() {
            cfg.bad_record_ratio.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let next_campaign_slot = rng.random_range(200..2_000);
        Self {
            start_ms: cfg.start_ms.clamp(0, MAX_START_MS),
            events_per_sec: u64::from(cfg.events_per_sec.max(1)),
            limit: cfg.events,
            bad_ratio,
            rng,
            tables: Tables::new(),
            slot: 0,
            order: 0,
            next_campaign_slot,
            campaigns: BTreeMap::new(),
            hits: BTreeMap::new(),
            scheduled: BTreeMap::new(),
            osint_items: vec![0; world::OSINT_FEEDS.len()],
            truth: Truth {
                seed: cfg.seed,
                ..Truth::default()
            },
            matcher: Matcher::default(),
            track_truth: cfg.track_truth,
        }
    }

    /// Ground truth for the records emitted so far.
    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    /// Consumes the generator, keeping its truth.
    pub fn into_truth(self) -> Truth {
        self.truth
    }

    /// Event time of an event slot.
    fn slot_time(&self, slot: u64) -> i64 {
        let offset = u128::from(slot) * 1000 / u128::from(self.events_per_sec);
        self.start_ms
            .saturating_add(i64::try_from(offset).unwrap_or(i64::MAX))
    }

    fn next_order(&mut self) -> u64 {
        self.order += 1;
        self.order
    }

    fn emit_scheduled(&mut self, at: i64, s: Scheduled) -> GeneratedRecord {
        match s {
            Scheduled::Partner {
                campaign,
                item,
                indicator,
            } => {
                if self.track_truth {
                    self.matcher.on_indicator(&indicator, &mut self.truth);
                }
                self.mark_published(campaign, item);
                GeneratedRecord {
                    topic: Topic::PartnerIndicators,
                    timestamp_ms: at,
                    key: Some(indicator.id.clone()),
                    payload: to_json(&indicator),
                    bad: None,
                }
            }
            Scheduled::Osint {
                campaign,
                item,
                osint,
            } => {
                // Exactly what ingest makes of the item.
                if self.track_truth
                    && let Ok(ind) = osint.to_indicator()
                {
                    self.matcher.on_indicator(&ind, &mut self.truth);
                }
                self.mark_published(campaign, item);
                GeneratedRecord {
                    topic: Topic::OsintItems,
                    timestamp_ms: at,
                    key: Some(format!("{}:{}", osint.feed_id, osint.item_id)),
                    payload: to_json(&osint),
                    bad: None,
                }
            }
        }
    }

    fn mark_published(&mut self, campaign: u64, item: usize) {
        if let Some(inf) = usize::try_from(campaign)
            .ok()
            .and_then(|c| self.truth.campaigns.get_mut(c))
            .and_then(|c| c.infrastructure.get_mut(item))
        {
            inf.published = true;
        }
    }

    /// Plans a campaign starting at the current slot: infrastructure, hits, releases.
    fn plan_campaign(&mut self) {
        let seq = self.truth.campaigns.len() as u64;
        let start = self.slot;
        let rng = &mut self.rng;
        let family = *world::FAMILIES.choose(rng).unwrap_or(&"unknown");
        let duration: u64 = rng.random_range(8_000..30_000);
        let release_off = duration * rng.random_range(40..=60) / 100;
        let after = duration - release_off;
        let release_slot = start + release_off;
        let hits: u64 = rng.random_range(16..=48);

        let n_countries = rng.random_range(3..=8);
        let mut countries: Vec<usize> = Vec::with_capacity(n_countries);
        while countries.len() < n_countries {
            let c = rng.random_range(0..world::COUNTRIES.len());
            if !countries.contains(&c) {
                countries.push(c);
            }
        }

        // Partners publish three campaigns in four, weighted; OSINT feeds the rest.
        let publisher = if rng.random_range(0..4) < 3 {
            let total: u32 = world::PARTNERS.iter().map(|p| u32::from(p.weight)).sum();
            let mut r = rng.random_range(0..total.max(1));
            let mut chosen = 0;
            for (i, p) in world::PARTNERS.iter().enumerate() {
                if r < u32::from(p.weight) {
                    chosen = i;
                    break;
                }
                r -= u32::from(p.weight);
            }
            Publisher::Partner(chosen)
        } else {
            Publisher::Osint(rng.random_range(0..world::OSINT_FEEDS.len()))
        };

        let block = campaign_block(seq);

        let seq36 = base36(seq);
        let n_domains = if rng.random_bool(0.5) { 2 } else { 1 };
        let domains: Vec<String> = (0..n_domains)
            .map(|j| {
                let mut name = String::new();
                for _ in 0..rng.random_range(2..=3) {
                    name.push_str(world::SYLLABLES.choose(rng).unwrap_or(&"x"));
                }
                let tld = world::MALICIOUS_TLDS.choose(rng).unwrap_or(&"top");
                let j = char::from(b'a' + j);
                format!("{name}-{seq36}{j}.{tld}")
            })
            .collect();
        let sender = format!(
            "{}@{}",
            world::MALICIOUS_MAIL_LOCALS
                .choose(rng)
                .unwrap_or(&"billing"),
            domains.last().map_or("x.top", String::as_str)
        );

        let mut items: Vec<Item> = domains
            .iter()
            .map(|d| Item {
                kind: IndicatorKind::Domain,
                value: d.clone(),
                ip: None,
                host: None,
            })
            .collect();
        for j in 0..rng.random_range(0..=2u32) {
            let ip = Ipv4Addr::from(block + 256 + 1 + 17 * j + rng.random_range(0..16));
            items.push(address_item(IpAddr::V4(ip)));
        }
        if rng.random_bool(0.6) {
            let net = Ipv4Addr::from(block);
            items.push(Item {
                kind: IndicatorKind::Cidr,
                value: format!("{net}/24"),
                ip: Some(IpAddr::V4(net)),
                host: None,
            });
        }
        if rng.random_bool(0.5) {
            let d = domains.first().map_or("x.top", String::as_str);
            let host = if rng.random_bool(0.5) {
                format!(
                    "{}.{d}",
                    world::MALICIOUS_SUBDOMAINS.choose(rng).unwrap_or(&"cdn")
                )
            } else {
                d.to_string()
            };
            let path = world::MALICIOUS_PATHS.choose(rng).unwrap_or(&"gate.php");
            let scheme = if rng.random_bool(0.3) {
                "https"
            } else {
                "http"
            };
            let value = if rng.random_bool(0.4) {
                format!("{scheme}://{host}/{path}?id={}", random_hex(rng, 3))
            } else {
                format!("{scheme}://{host}/{path}")
            };
            items.push(Item {
                kind: IndicatorKind::Url,
                value,
                ip: None,
                host: Some(host),
            });
        }
        if rng.random_bool(0.5) {
            // Malicious hashes are checked against the benign catalogue.
            let mut h = random_hex(rng, 32);
            while self.tables.benign_files.iter().any(|(s, _)| *s == h) {
                h = random_hex(rng, 32);
            }
            items.push(plain_item(IndicatorKind::Sha256, h));
        }
        if rng.random_bool(0.35) {
            items.push(plain_item(IndicatorKind::Email, sender.clone()));
        }
        if rng.random_bool(0.25) {
            items.push(plain_item(IndicatorKind::Wallet, random_wallet(rng)));
        }
        if rng.random_bool(0.15) || items.len() < 3 {
            let ip = Ipv6Addr::new(
                world::MALICIOUS_V6_PREFIX,
                (seq >> 16) as u16,
                seq as u16,
                0,
                0,
                0,
                0,
                rng.random_range(1..0xffff),
            );
            items.push(address_item(IpAddr::V6(ip)));
        }

        // Most infrastructure is published; some stays unknown (its hits match nothing).
        let mut published: Vec<usize> =
            (0..items.len()).filter(|_| rng.random_bool(0.85)).collect();
        if published.len() < 2 {
            published = vec![0, 1];
        }

        let t_start = self.slot_time(start);
        let t_release = self.slot_time(release_slot);
        let t_end = self.slot_time(start + duration);
        let rng = &mut self.rng;
        let valid_from = t_start - rng.random_range(3_600_000..7 * 86_400_000);
        let until_slot = release_slot + after * rng.random_range(30..=70) / 100;
        let expires = rng.random_bool(0.3);
        let update = rng.random_bool(0.3).then(|| {
            let slot = release_slot + after * rng.random_range(10..=40) / 100;
            (published.choose(rng).copied().unwrap_or(0), slot)
        });
        let revoke = rng.random_bool(0.35).then(|| {
            let others: Vec<usize> = published
                .iter()
                .copied()
                .filter(|&i| update.is_none_or(|(u, _)| u != i))
                .collect();
            let slot = release_slot + after * rng.random_range(50..=130) / 100;
            (others.choose(rng).copied().unwrap_or(0), slot)
        });
        let t_until = self.slot_time(until_slot);
        let t_update = update.map(|(i, s)| (i, self.slot_time(s)));
        let t_revoke = revoke.map(|(i, s)| (i, self.slot_time(s)));

        let mut infrastructure: Vec<Infrastructure> = items
            .iter()
            .map(|it| Infrastructure {
                kind: it.kind,
                value: it.value.clone(),
                indicator_id: None,
                corroborating_ids: Vec::new(),
                published: false,
            })
            .collect();
        let rng = &mut self.rng;
        let mut to_schedule: Vec<(i64, Scheduled)> = Vec::new();
        match publisher {
            Publisher::Partner(p) => {
                let partner = world::PARTNERS.get(p).unwrap_or(&world::PARTNERS[0]);
                for (j, &i) in published.iter().enumerate() {
                    let Some(item) = items.get(i) else { continue };
                    let at = t_release + j as i64;
                    let confidence = rng.random_range(partner.min_confidence..=100);
                    let ind = Indicator {
                        schema_version: schemas::SCHEMA_VERSION,
                        id: stix_id(rng),
                        kind: item.kind,
                        value: item.value.clone(),
                        owner: partner.id.to_string(),
                        source_kind: SourceKind::Partner,
                        source_id: partner.source_id.to_string(),
                        tlp: partner.tlp,
                        sharing: partner.sharing.iter().map(|s| s.to_string()).collect(),
                        confidence,
                        created: ts(at),
                        modified: ts(at),
                        valid_from: ts(valid_from),
                        valid_until: expires.then(|| ts(t_until)),
                        revoked: false,
                        labels: vec![family.to_string(), role(item.kind).to_string()],
                    };
                    if let Some(inf) = infrastructure.get_mut(i) {
                        inf.indicator_id = Some(ind.id.clone());
                    }
                    if let Some((u, t)) = t_update
                        && u == i
                    {
                        let t = t.max(at + 1);
                        let mut v2 = ind.clone();
                        v2.confidence = if confidence > 60 {
                            confidence - 30
                        } else {
                            confidence + 30
                        };
                        v2.modified = ts(t);
                        to_schedule.push((t, partner_version(seq, i, v2)));
                    }
                    if let Some((r, t)) = t_revoke
                        && r == i
                    {
                        let t = t.max(at + 1);
                        let mut v2 = ind.clone();
                        v2.revoked = true;
                        v2.modified = ts(t);
                        to_schedule.push((t, partner_version(seq, i, v2)));
                    }
                    to_schedule.push((at, partner_version(seq, i, ind)));
                }
            }
            Publisher::Osint(f) => {
                let feed = world::OSINT_FEEDS
                    .get(f)
                    .copied()
                    .unwrap_or("abuse-tracker");
                let ttl_mode = rng.random_range(0..10);
                for (j, &i) in published.iter().enumerate() {
                    let Some(item) = items.get(i) else { continue };
                    let at = t_release + j as i64;
                    let ttl_secs = match ttl_mode {
                        0..3 => Some(((t_until - at).max(1) as u64).div_ceil(1000)),
                        3..7 => Some(30 * 86_400),
                        _ => None,
                    };
                    let n = next_item_number(&mut self.osint_items, f);
                    let item_rec = osint_item(rng, feed, n, item, at, valid_from, ttl_secs, family);
                    if let Some(inf) = infrastructure.get_mut(i) {
                        inf.indicator_id = Some(format!("osint:{feed}:{n:07}"));
                    }
                    if let Some((r, t)) = t_revoke
                        && r == i
                    {
                        let t = t.max(at + 1);
                        let mut v2 = item_rec.clone();
                        v2.withdrawn = true;
                        v2.published = ts(t);
                        to_schedule.push((t, osint_version(seq, i, v2)));
                    }
                    to_schedule.push((at, osint_version(seq, i, item_rec)));
                }
            }
        }
        // Open sources often list infrastructure a partner shares: a second, independent
        // indicator on the same value, published a little later, corroborates it. Its own
        // random stream leaves the rest of the scenario as it was without it.
        let mut side = ChaCha8Rng::seed_from_u64(self.truth.seed ^ seq.rotate_left(32));
        if matches!(publisher, Publisher::Partner(_)) && side.random_bool(0.3) {
            let f = side.random_range(0..world::OSINT_FEEDS.len());
            let feed = world::OSINT_FEEDS[f];
            for (j, &i) in published.iter().take(2).enumerate() {
                let Some(item) = items.get(i) else { continue };
                let at = t_release + 500 + j as i64;
                let n = next_item_number(&mut self.osint_items, f);
                let item_rec = osint_item(&mut side, feed, n, item, at, valid_from, None, family);
                if let Some(inf) = infrastructure.get_mut(i) {
                    inf.corroborating_ids.push(format!("osint:{feed}:{n:07}"));
                }
                to_schedule.push((at, osint_version(seq, i, item_rec)));
            }
        }
        for (t, s) in to_schedule {
            let order = self.next_order();
            self.scheduled.insert((t, order), s);
        }

        // Half of the hits before the release (retroactive), half after (live).
        for h in 0..hits {
            let rng = &mut self.rng;
            let slot = if h < hits / 2 {
                start + rng.random_range(0..release_off)
            } else {
                release_slot + rng.random_range(0..after)
            };
            let item = rng.random_range(0..items.len());
            let order = self.next_order();
            self.hits.insert(
                (slot, order),
                Hit {
                    campaign: seq,
                    item,
                },
            );
        }

        let (publisher_id, source_kind) = match publisher {
            Publisher::Partner(p) => (
                world::PARTNERS.get(p).map_or("", |p| p.id),
                SourceKind::Partner,
            ),
            Publisher::Osint(f) => (
                world::OSINT_FEEDS.get(f).copied().unwrap_or(""),
                SourceKind::Osint,
            ),
        };
        self.truth.campaigns.push(Campaign {
            id: format!("campaign-{seq:05}"),
            family: family.to_string(),
            publisher: publisher_id.to_string(),
            source_kind,
            start_ms: t_start,
            release_ms: t_release,
            end_ms: t_end,
            countries: countries
                .iter()
                .filter_map(|&c| world::COUNTRIES.get(c).map(|c| c.0.to_string()))
                .collect(),
            infrastructure,
            hits: 0,
        });
        self.campaigns.insert(
            seq,
            CampaignPlan {
                family,
                countries,
                block,
                domains,
                items,
                sender,
                hits_left: hits,
            },
        );
    }

    /// The event of one campaign hit at `slot`.
    fn hit_event(&mut self, hit: Hit, slot: u64, at: i64) -> Option<SensorEvent> {
        let plan = self.campaigns.get_mut(&hit.campaign)?;
        plan.hits_left = plan.hits_left.saturating_sub(1);
        let item = plan.items.get(hit.item)?.clone();
        let rng = &mut self.rng;
        let t = &self.tables;
        let family = plan.family;
        let block = plan.block;
        // Other campaign infrastructure (.2/24 and .3/24 of its block): never published.
        let infra_addr = IpAddr::V4(Ipv4Addr::from(block + 512 + rng.random_range(1..511)));
        let domain0 = plan.domains.first().cloned().unwrap_or_default();
        let c2 = plan
            .items
            .iter()
            .filter(|i| i.kind == IndicatorKind::Ipv4)
            .filter_map(|i| i.ip)
            .collect::<Vec<_>>();
        let campaign_hash = plan
            .items
            .iter()
            .find(|i| i.kind == IndicatorKind::Sha256)
            .map(|i| i.value.clone());
        let sender = plan.sender.clone();
        let country = *plan.countries.choose(rng)?;

        let kind = match item.kind {
            IndicatorKind::Domain => match rng.random_range(0..4) {
                0 | 1 => EventKind::Dns,
                2 => EventKind::Tls,
                _ => EventKind::Http,
            },
            IndicatorKind::Ipv4 => match rng.random_range(0..20) {
                0..8 => EventKind::Flow,
                8..15 => EventKind::IdsAlert,
                _ => EventKind::Sinkhole,
            },
            IndicatorKind::Ipv6 => EventKind::Flow,
            IndicatorKind::Cidr => match rng.random_range(0..10) {
                0..6 => EventKind::Darknet,
                6..8 => EventKind::Flow,
                _ => EventKind::IdsAlert,
            },
            IndicatorKind::Url => EventKind::Http,
            IndicatorKind::Md5 | IndicatorKind::Sha1 | IndicatorKind::Sha256 => {
                if rng.random_bool(0.5) {
                    EventKind::Email
                } else {
                    EventKind::Http
                }
            }
            IndicatorKind::Email | IndicatorKind::Wallet => EventKind::Email,
        };
        let ti = type_index(SensorType::for_kind(kind));
        let local = t
            .by_country_type
            .get(country)
            .and_then(|v| v.get(ti))
            .filter(|v| !v.is_empty());
        let pool = local.or_else(|| t.by_type.get(ti))?;
        let sensor = t.sensor(*pool.choose(rng)?)?;
        let mut ev = blank_event(sensor, slot, at, kind);
        let victim = victim_addr(rng, t, sensor.country);

        match (item.kind, kind) {
            (IndicatorKind::Domain, _) => {
                let host = if rng.random_bool(0.6) {
                    let sub = world::MALICIOUS_SUBDOMAINS.choose(rng).unwrap_or(&"cdn");
                    format!("{sub}.{}", item.value)
                } else {
                    item.value.clone()
                };
                let resolved = c2.choose(rng).copied().unwrap_or(infra_addr);
                ev.src_ip = Some(victim);
                ev.victim_ip = Some(victim);
                match kind {
                    EventKind::Dns => {
                        ev.dst_ip = Some(resolver(rng));
                        ev.dst_port = Some(53);
                        ev.proto = Some("UDP".into());
                    }
                    EventKind::Tls => {
                        ev.dst_ip = Some(resolved);
                        ev.dst_port = Some(443);
                        ev.proto = Some("TCP".into());
                    }
                    _ => {
                        let path = world::MALICIOUS_PATHS.choose(rng).unwrap_or(&"gate.php");
                        ev.url = Some(format!("http://{host}/{path}"));
                        ev.dst_ip = Some(resolved);
                        ev.dst_port = Some(80);
                        ev.proto = Some("TCP".into());
                    }
                }
                ev.src_port = Some(ephemeral_port(rng));
                ev.domain = Some(host);
            }
            (IndicatorKind::Ipv4 | IndicatorKind::Ipv6, _) => {
                let src = if item.kind == IndicatorKind::Ipv6 {
                    benign_v6(rng)
                } else {
                    victim
                };
                ev.src_ip = Some(src);
                ev.victim_ip = Some(src);
                ev.dst_ip = item.ip;
                ev.src_port = Some(ephemeral_port(rng));
                ev.dst_port = Some(*[443, 8080, 4444, 8443, 80].choose(rng).unwrap_or(&443));
                ev.proto = Some("TCP".into());
                if kind == EventKind::IdsAlert {
                    ev.signature = Some(format!("ET MALWARE {family} CnC Checkin"));
                }
            }
            (IndicatorKind::Cidr, _) => {
                let net = match item.ip {
                    Some(IpAddr::V4(n)) => u32::from(n),
                    _ => block,
                };
                let scanner = IpAddr::V4(Ipv4Addr::from(net + rng.random_range(1..255)));
                ev.src_ip = Some(scanner);
                ev.src_port = Some(ephemeral_port(rng));
                ev.dst_port = Some(*[23, 445, 3389, 22, 5555].choose(rng).unwrap_or(&23));
                ev.proto = Some("TCP".into());
                if kind == EventKind::Darknet {
                    ev.dst_ip = Some(darknet_addr(rng, t, sensor.country));
                } else {
                    ev.dst_ip = Some(victim);
                    ev.victim_ip = Some(victim);
                    if kind == EventKind::IdsAlert {
                        ev.signature = Some(format!("ET SCAN {family} scanner activity"));
                    }
                }
            }
            (IndicatorKind::Url, _) => {
                ev.url = Some(item.value.clone());
                ev.domain = item.host.clone();
                ev.src_ip = Some(victim);
                ev.victim_ip = Some(victim);
                ev.src_port = Some(ephemeral_port(rng));
                ev.dst_ip = Some(c2.choose(rng).copied().unwrap_or(infra_addr));
                ev.dst_port = Some(if item.value.starts_with("https") {
                    443
                } else {
                    80
                });
                ev.proto = Some("TCP".into());
            }
            (IndicatorKind::Md5 | IndicatorKind::Sha1 | IndicatorKind::Sha256, EventKind::Http) => {
                ev.url = Some(format!("http://{domain0}/dl/{}.exe", random_hex(rng, 4)));
                ev.domain = Some(domain0);
                ev.src_ip = Some(victim);
                ev.victim_ip = Some(victim);
                ev.dst_ip = Some(infra_addr);
                ev.dst_port = Some(80);
                ev.proto = Some("TCP".into());
                ev.file_hashes.sha256 = Some(item.value.clone());
            }
            (_, _) => {
                // Mail: a phishing or extortion message from the campaign's mail server.
                ev.src_ip = Some(infra_addr);
                ev.dst_port = Some(25);
                ev.proto = Some("TCP".into());
                match item.kind {
                    IndicatorKind::Email => {
                        ev.email = Some(item.value.clone());
                        if rng.random_bool(0.5) {
                            ev.file_hashes.sha256 = campaign_hash;
                        }
                    }
                    IndicatorKind::Wallet => {
                        ev.email = Some(sender);
                        ev.wallet = Some(item.value.clone());
                    }
                    _ => {
                        ev.email = Some(sender);
                        ev.file_hashes.sha256 = Some(item.value.clone());
                    }
                }
            }
        }
        Some(ev)
    }

    /// A benign event at `slot`; its values never match planted infrastructure.
    fn benign_event(&mut self, slot: u64, at: i64) -> Option<SensorEvent> {
        let rng = &mut self.rng;
        let t = &self.tables;
        let kind = *t.kind_table.choose(rng)?;
        let pool = t.by_type.get(type_index(SensorType::for_kind(kind)))?;
        let sensor = t.sensor(*pool.choose(rng)?)?;
        let mut ev = blank_event(sensor, slot, at, kind);
        match kind {
            EventKind::Dns => {
                let v = victim_addr(rng, t, sensor.country);
                ev.src_ip = Some(v);
                ev.src_port = Some(ephemeral_port(rng));
                ev.dst_ip = Some(resolver(rng));
                ev.dst_port = Some(53);
                ev.proto = Some("UDP".into());
                ev.domain = Some(benign_host(rng));
            }
            EventKind::Http => {
                let host = benign_host(rng);
                let path = world::BENIGN_PATHS.choose(rng).unwrap_or(&"index.html");
                ev.src_ip = Some(victim_addr(rng, t, sensor.country));
                ev.src_port = Some(ephemeral_port(rng));
                ev.dst_ip = Some(benign_v4(rng, t));
                ev.dst_port = Some(80);
                ev.proto = Some("TCP".into());
                ev.url = Some(format!("http://{host}/{path}"));
                ev.domain = Some(host);
            }
            EventKind::Tls => {
                ev.src_ip = Some(victim_addr(rng, t, sensor.country));
                ev.src_port = Some(ephemeral_port(rng));
                ev.dst_ip = Some(benign_v4(rng, t));
                ev.dst_port = Some(443);
                ev.proto = Some("TCP".into());
                ev.domain = Some(benign_host(rng));
            }
            EventKind::Flow => {
                if rng.random_range(0..100) < 4 {
                    ev.src_ip = Some(benign_v6(rng));
                    ev.dst_ip = Some(benign_v6(rng));
                } else {
                    ev.src_ip = Some(victim_addr(rng, t, sensor.country));
                    ev.dst_ip = Some(benign_v4(rng, t));
                }
                ev.src_port = Some(ephemeral_port(rng));
                let (port, proto) = *[
                    (443, "TCP"),
                    (80, "TCP"),
                    (53, "UDP"),
                    (123, "UDP"),
                    (22, "TCP"),
                ]
                .choose(rng)
                .unwrap_or(&(443, "TCP"));
                ev.dst_port = Some(port);
                ev.proto = Some(proto.into());
            }
            EventKind::IdsAlert => {
                let v = victim_addr(rng, t, sensor.country);
                ev.src_ip = Some(benign_v4(rng, t));
                ev.src_port = Some(ephemeral_port(rng));
                ev.dst_ip = Some(v);
                ev.victim_ip = Some(v);
                ev.dst_port = Some(*[80, 443, 1433, 3306, 8080].choose(rng).unwrap_or(&80));
                ev.proto = Some("TCP".into());
                ev.signature = world::BENIGN_SIGNATURES.choose(rng).map(|s| s.to_string());
            }
            EventKind::Darknet => {
                ev.src_ip = Some(benign_v4(rng, t));
                ev.src_port = Some(ephemeral_port(rng));
                ev.dst_ip = Some(darknet_addr(rng, t, sensor.country));
                ev.dst_port = Some(*[23, 445, 3389, 22, 5555, 6379].choose(rng).unwrap_or(&23));
                ev.proto = Some("TCP".into());
            }
            EventKind::Sinkhole => {
                let v = victim_addr(rng, t, sensor.country);
                let s = world::SINKHOLES
                    .choose(rng)
                    .copied()
                    .unwrap_or([87, 106, 18, 141]);
                ev.src_ip = Some(v);
                ev.victim_ip = Some(v);
                ev.src_port = Some(ephemeral_port(rng));
                ev.dst_ip = Some(IpAddr::V4(Ipv4Addr::from(s)));
                ev.dst_port = Some(80);
                ev.proto = Some("TCP".into());
            }
            EventKind::Email | EventKind::Purchase => {
                ev.src_ip = Some(benign_v4(rng, t));
                ev.dst_port = Some(25);
                ev.proto = Some("TCP".into());
                ev.email = Some(format!(
                    "{}@{}",
                    world::BENIGN_MAIL_LOCALS.choose(rng).unwrap_or(&"team"),
                    world::BENIGN_MAIL_DOMAINS
                        .choose(rng)
                        .unwrap_or(&"gmail.com")
                ));
                if rng.random_range(0..5) == 0
                    && let Some((sha256, md5)) = t.benign_files.choose(rng)
                {
                    ev.file_hashes = FileHashes {
                        md5: Some(md5.clone()),
                        sha1: None,
                        sha256: Some(sha256.clone()),
                    };
                }
            }
        }
        Some(ev)
    }

    /// A bad payload at `slot`, rotating through the kinds of damage and the input topics.
    fn bad_record(&mut self, slot: u64, at: i64) -> GeneratedRecord {
        // Every (kind, topic) pair comes up once in 49 bad records; sensor events most.
        const TOPICS: [Topic; 7] = [
            Topic::SensorEvents,
            Topic::PartnerIndicators,
            Topic::SensorEvents,
            Topic::OsintItems,
            Topic::SensorEvents,
            Topic::DeskActions,
            Topic::SensorEvents,
        ];
        let n = self.truth.bad_records;
        let kind = BadKind::ALL[(n % 7) as usize];
        let topic = TOPICS[((n / 7) % 7) as usize];
        self.truth.bad_records += 1;
        *self
            .truth
            .bad_records_by_kind
            .entry(kind.as_str().to_string())
            .or_default() += 1;
        let decoy = IpAddr::V4(Ipv4Addr::new(192, 0, 2, (n % 250) as u8 + 1)).to_string();
        let (key, payload) = match topic {
            Topic::PartnerIndicators => {
                let p = &world::PARTNERS[(n % world::PARTNERS.len() as u64) as usize];
                let ind = Indicator {
                    schema_version: schemas::SCHEMA_VERSION,
                    id: format!("indicator--bad-{slot}"),
                    kind: IndicatorKind::Ipv4,
                    value: decoy,
                    owner: p.id.to_string(),
                    source_kind: SourceKind::Partner,
                    source_id: p.source_id.to_string(),
                    tlp: p.tlp,
                    sharing: p.sharing.iter().map(|s| s.to_string()).collect(),
                    confidence: 50,
                    created: ts(at),
                    modified: ts(at),
                    valid_from: ts(at),
                    valid_until: None,
                    revoked: false,
                    labels: Vec::new(),
                };
                (ind.id.clone(), bad::damage(kind, topic, &ind, n))
            }
            Topic::OsintItems => {
                let item = OsintItem {
                    schema_version: schemas::SCHEMA_VERSION,
                    feed_id: world::OSINT_FEEDS[0].to_string(),
                    item_id: format!("bad-{slot}"),
                    kind: Some(IndicatorKind::Ipv4),
                    value: decoy,
                    published: ts(at),
                    valid_from: None,
                    ttl_secs: None,
                    confidence: 50,
                    tags: Vec::new(),
                    withdrawn: false,
                };
                (
                    format!("{}:{}", item.feed_id, item.item_id),
                    bad::damage(kind, topic, &item, n),
                )
            }
            Topic::DeskActions => {
                let action = DeskAction {
                    schema_version: schemas::SCHEMA_VERSION,
                    action_id: format!("action-bad-{slot}"),
                    alert_id: format!("alert-{slot:x}"),
                    officer_id: "lyon-duty-01".into(),
                    center: "Lyon".into(),
                    at: ts(at),
                    action: ActionKind::Acknowledge,
                };
                (
                    action.alert_id.clone(),
                    bad::damage(kind, topic, &action, n),
                )
            }
            _ => match self.benign_event(slot, at) {
                Some(ev) => (ev.sensor_id.clone(), bad::damage(kind, topic, &ev, n)),
                None => (String::new(), b"{\"schema_version\":1,".to_vec()),
            },
        };
        GeneratedRecord {
            topic,
            timestamp_ms: at,
            key: Some(key),
            payload,
            bad: Some(kind),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Publisher {
    Partner(usize),
    Osint(usize),
}

impl Iterator for Generator {
    type Item = GeneratedRecord;

    fn next(&mut self) -> Option<GeneratedRecord> {
        loop {
            if self.limit.is_some_and(|n| self.slot >= n) {
                return None;
            }
            let now = self.slot_time(self.slot);
            while self.slot >= self.next_campaign_slot {
                self.plan_campaign();
                let gap = self
                    .rng
                    .random_range(CAMPAIGN_EVERY_EVENTS / 2..CAMPAIGN_EVERY_EVENTS * 3 / 2);
                self.next_campaign_slot += gap;
            }
            if let Some(entry) = self.scheduled.first_entry()
                && entry.key().0 <= now
            {
                let at = entry.key().0;
                let s = entry.remove();
                return Some(self.emit_scheduled(at, s));
            }

            let slot = self.slot;
            self.slot += 1;
            if let Some(entry) = self.hits.first_entry()
                && entry.key().0 <= slot
            {
                let hit = entry.remove();
                let ev = self.hit_event(hit, slot, now);
                if let Some(plan) = self.campaigns.get(&hit.campaign)
                    && plan.hits_left == 0
                {
                    self.campaigns.remove(&hit.campaign);
                }
                if let Some(ev) = ev {
                    if self.track_truth {
                        self.matcher.on_event(&ev, &mut self.truth);
                    }
                    if let Some(c) = usize::try_from(hit.campaign)
                        .ok()
                        .and_then(|c| self.truth.campaigns.get_mut(c))
                    {
                        c.hits += 1;
                    }
                    return Some(event_record(&ev, now));
                }
            }
            if self.bad_ratio > 0.0 && self.rng.random::<f64>() < self.bad_ratio {
                return Some(self.bad_record(slot, now));
            }
            if let Some(ev) = self.benign_event(slot, now) {
                return Some(event_record(&ev, now));
            }
            // Unreachable with the fixed world; skip the slot rather than stop.
        }
    }
}

fn event_record(ev: &SensorEvent, at: i64) -> GeneratedRecord {
    GeneratedRecord {
        topic: Topic::SensorEvents,
        timestamp_ms: at,
        key: Some(ev.sensor_id.clone()),
        payload: to_json(ev),
        bad: None,
    }
}

fn partner_version(campaign: u64, item: usize, indicator: Indicator) -> Scheduled {
    Scheduled::Partner {
        campaign,
        item,
        indicator: Box::new(indicator),
    }
}

/// The next item number of OSINT feed `feed`, from 1.
fn next_item_number(counters: &mut [u64], feed: usize) -> u64 {
    counters.get_mut(feed).map_or(0, |c| {
        *c += 1;
        *c
    })
}

/// OSINT item number `n` of `feed` listing `item`, published at `at`.
#[allow(clippy::too_many_arguments)] // The item's fields, each from the campaign plan.
fn osint_item(
    rng: &mut impl Rng,
    feed: &str,
    n: u64,
    item: &Item,
    at: i64,
    valid_from: i64,
    ttl_secs: Option<u64>,
    family: &str,
) -> OsintItem {
    OsintItem {
        schema_version: schemas::SCHEMA_VERSION,
        feed_id: feed.to_string(),
        item_id: format!("{n:07}"),
        kind: rng.random_bool(0.7).then_some(item.kind),
        value: item.value.clone(),
        published: ts(at),
        valid_from: rng.random_bool(0.8).then(|| ts(valid_from)),
        ttl_secs,
        confidence: rng.random_range(30..=90),
        tags: vec![family.to_string(), role(item.kind).to_string()],
        withdrawn: false,
    }
}

fn osint_version(campaign: u64, item: usize, osint: OsintItem) -> Scheduled {
    Scheduled::Osint {
        campaign,
        item,
        osint: Box::new(osint),
    }
}

/// Serializes a record; the record types here have only string keys and plain fields,
/// so serialization cannot fail (an empty payload would surface as a dead letter).
pub(crate) fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// A timestamp from Unix ms; every time the generator makes is in jiff's range.
fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn blank_event(sensor: &Sensor, slot: u64, at: i64, kind: EventKind) -> SensorEvent {
    SensorEvent {
        schema_version: schemas::SCHEMA_VERSION,
        event_id: format!("{}:{slot}", sensor.id),
        sensor_id: sensor.id.clone(),
        country: sensor.country_code().to_string(),
        observed_at: ts(at),
        kind,
        src_ip: None,
        src_port: None,
        dst_ip: None,
        dst_port: None,
        proto: None,
        domain: None,
        url: None,
        file_hashes: FileHashes::default(),
        email: None,
        wallet: None,
        victim_ip: None,
        signature: None,
        purchase: None,
    }
}

fn address_item(ip: IpAddr) -> Item {
    Item {
        kind: if ip.is_ipv4() {
            IndicatorKind::Ipv4
        } else {
            IndicatorKind::Ipv6
        },
        value: ip.to_string(),
        ip: Some(ip),
        host: None,
    }
}

fn plain_item(kind: IndicatorKind, value: String) -> Item {
    Item {
        kind,
        value,
        ip: None,
        host: None,
    }
}

/// The label describing what a piece of infrastructure is for.
fn role(kind: IndicatorKind) -> &'static str {
    match kind {
        IndicatorKind::Domain => "c2-domain",
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => "c2-server",
        IndicatorKind::Cidr => "scanner-range",
        IndicatorKind::Url => "malware-download",
        IndicatorKind::Md5 | IndicatorKind::Sha1 | IndicatorKind::Sha256 => "payload",
        IndicatorKind::Email => "phishing-sender",
        IndicatorKind::Wallet => "ransom-wallet",
    }
}

fn ephemeral_port(rng: &mut ChaCha8Rng) -> u16 {
    rng.random_range(49_152..=65_535)
}

fn benign_v4(rng: &mut ChaCha8Rng, t: &Tables) -> IpAddr {
    let o1 = u32::from(t.benign_octets.choose(rng).copied().unwrap_or(8));
    IpAddr::V4(Ipv4Addr::from(
        (o1 << 24) | (rng.random::<u32>() & 0x00ff_ffff),
    ))
}

fn benign_v6(rng: &mut ChaCha8Rng) -> IpAddr {
    let low: u128 = rng.random::<u128>() >> 16;
    IpAddr::V6(Ipv6Addr::from(
        (u128::from(world::BENIGN_V6_PREFIX) << 112) | low,
    ))
}

fn victim_addr(rng: &mut ChaCha8Rng, t: &Tables, country: usize) -> IpAddr {
    let base = t.country_prefix.get(country).map_or(0x0800_0000, |p| p.0);
    IpAddr::V4(Ipv4Addr::from(base | (rng.random::<u32>() & 0xffff)))
}

fn darknet_addr(rng: &mut ChaCha8Rng, t: &Tables, country: usize) -> IpAddr {
    let base = t.country_prefix.get(country).map_or(0x0800_0000, |p| p.1);
    IpAddr::V4(Ipv4Addr::from(base | (rng.random::<u32>() & 0xffff)))
}

fn resolver(rng: &mut ChaCha8Rng) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        world::RESOLVERS
            .choose(rng)
            .copied()
            .unwrap_or([8, 8, 8, 8]),
    ))
}

fn benign_host(rng: &mut ChaCha8Rng) -> String {
    let base = world::BENIGN_DOMAINS.choose(rng).unwrap_or(&"example.com");
    if rng.random_range(0..4) == 0 {
        (*base).to_string()
    } else {
        let sub = world::BENIGN_SUBDOMAINS.choose(rng).unwrap_or(&"www");
        format!("{sub}.{base}")
    }
}

fn random_hex(rng: &mut ChaCha8Rng, bytes: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        let b: u8 = rng.random();
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

fn random_wallet(rng: &mut ChaCha8Rng) -> String {
    if rng.random_bool(0.6) {
        const BECH32: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
        let mut s = String::from("bc1q");
        for _ in 0..38 {
            s.push(char::from(*BECH32.choose(rng).unwrap_or(&b'q')));
        }
        s
    } else {
        format!("0x{}", random_hex(rng, 20))
    }
}

/// A STIX 2.1 indicator id with a random (version 4) UUID.
fn stix_id(rng: &mut ChaCha8Rng) -> String {
    let r: u128 = rng.random();
    let r = (r & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    format!(
        "indicator--{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        r >> 96,
        (r >> 80) & 0xffff,
        (r >> 64) & 0xffff,
        (r >> 48) & 0xffff,
        r & 0xffff_ffff_ffff
    )
}

/// The first address of campaign `seq`'s own /22 in the malicious space; distinct for
/// 65,536 consecutive campaigns (an odd multiplier permutes the 16-bit index).
fn campaign_block(seq: u64) -> u32 {
    // The offset only keeps the first campaign away from the start of the space.
    let idx = (seq.wrapping_add(0x5a17).wrapping_mul(40_503) & 0xffff) as u32;
    let o1 = u32::from(world::MALICIOUS_V4_OCTETS[(idx >> 14) as usize & 3]);
    (o1 << 24) | (((idx >> 6) & 0xff) << 16) | ((idx & 63) << 10)
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stix_ids_are_version_4_uuids() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let id = stix_id(&mut rng);
        assert_eq!(id.len(), "indicator--".len() + 36);
        assert_eq!(&id[25..26], "4", "{id}");
        assert!(matches!(&id[30..31], "8" | "9" | "a" | "b"), "{id}");
    }

    #[test]
    fn base36_is_positional() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
    }

    #[test]
    fn campaign_blocks_are_distinct_and_malicious() {
        let mut seen = std::collections::BTreeSet::new();
        for seq in 0..65_536u64 {
            let block = campaign_block(seq);
            assert_eq!(block & 0x3ff, 0, "a /22");
            assert!(world::MALICIOUS_V4_OCTETS.contains(&((block >> 24) as u8)));
            assert!(seen.insert(block));
        }
        assert_eq!(campaign_block(65_536), campaign_block(0));
    }
}
