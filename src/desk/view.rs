//! What one officer may see: the egress rule ([`schemas::sharing`]) with the officer's
//! center as the recipient, applied once per alert version and center, and the API's
//! views (queue lines, details, snapshots, deltas) built from it.

use std::sync::{Arc, OnceLock};

use schemas::Alert;
use schemas::desk::{
    AlertDetail, CenterInfo, CheckView, DeskDelta, DeskSnapshot, ExplainView, FieldView, QueueItem,
};
use schemas::marking::Tlp;
use schemas::routing::{AlertRouting, AlertState};
use schemas::sharing::{
    Decision, Interest, Policy, Recipient, RecipientKind, SharedAlert, explain,
};

use super::officers::CenterEntry;
use super::store::{ClosedEntry, DeskStore, Tracked};

/// A command center as the desk sees it.
#[derive(Debug, Clone)]
pub struct DeskCenter {
    /// Its name, as the roster writes it.
    pub name: String,
    /// Its IANA time zone.
    pub time_zone: String,
    /// Its officers, as the egress rule sees them.
    pub recipient: Recipient,
}

/// The recipient id of a center's officers when the officers file names none:
/// `desk-` and the center's name in lower case with dashes (`desk-buenos-aires`).
pub fn default_recipient_id(center: &str) -> String {
    let slug: String = center
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("desk-{slug}")
}

/// The recipient a center's officers are to the egress rule.
pub fn recipient(center: &str, settings: Option<&CenterEntry>, drill: bool) -> Recipient {
    let id = settings
        .and_then(|s| s.recipient.clone())
        .unwrap_or_else(|| default_recipient_id(center));
    Recipient {
        organisation: id.clone(),
        id,
        kind: RecipientKind::Officer,
        country: None,
        clearance: settings.and_then(|s| s.clearance).unwrap_or(Tlp::Red),
        personal_data: settings.is_some_and(|s| s.personal_data),
        // A drill instance's desk is a drill recipient: it sees drill alerts only.
        drill,
        interest: Interest::default(),
    }
}

/// The centers of the roster, in roster order, with their egress settings.
#[derive(Debug, Clone, Default)]
pub struct Centers(Vec<DeskCenter>);

impl Centers {
    /// The roster's centers (name, IANA zone) with the officers file's settings.
    pub fn new(zones: &[(String, String)], settings: &[CenterEntry], drill: bool) -> Self {
        Self(
            zones
                .iter()
                .map(|(name, tz)| DeskCenter {
                    name: name.clone(),
                    time_zone: tz.clone(),
                    recipient: recipient(
                        name,
                        settings.iter().find(|s| s.name.eq_ignore_ascii_case(name)),
                        drill,
                    ),
                })
                .collect(),
        )
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The index of the center called `name` (ASCII case-insensitive).
    pub fn index(&self, name: &str) -> Option<usize> {
        self.0
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The center at `index`.
    pub fn get(&self, index: usize) -> Option<&DeskCenter> {
        self.0.get(index)
    }

    /// Name and time zone of each.
    pub fn infos(&self) -> Vec<CenterInfo> {
        self.0
            .iter()
            .map(|c| CenterInfo {
                name: c.name.clone(),
                time_zone: c.time_zone.clone(),
            })
            .collect()
    }
}

/// The egress rule's verdict on one alert version for one center.
#[derive(Debug, Clone)]
pub struct CenterView {
    /// The recipient id.
    pub recipient: String,
    /// The alert as the center's officers may see it; none when withheld.
    pub shared: Option<SharedAlert>,
    /// Why it is withheld, if it is.
    pub hidden: Option<String>,
    /// Every check of the rule.
    pub checks: Vec<CheckView>,
    /// Every field's treatment.
    pub fields: Vec<FieldView>,
}

/// Applies the egress rule to `alert` for `recipient`.
pub fn center_view(alert: &Alert, recipient: &Recipient, policy: &Policy) -> CenterView {
    let e = explain(alert, recipient, policy);
    let (shared, hidden) = match e.decision {
        Decision::Deliver(s) => (Some(*s), None),
        Decision::Withhold(why) => (None, Some(why.to_string())),
    };
    CenterView {
        recipient: e.recipient,
        shared,
        hidden,
        checks: e
            .checks
            .into_iter()
            .map(|c| CheckView {
                name: c.name.to_string(),
                passed: c.passed,
                detail: c.detail,
            })
            .collect(),
        fields: e
            .fields
            .into_iter()
            .map(|f| FieldView {
                field: f.field.to_string(),
                treatment: f.treatment,
                why: f.why,
            })
            .collect(),
    }
}

/// One version of an alert, with the egress verdict for each center computed on first use.
#[derive(Debug)]
pub struct AlertVersion {
    /// The alert's content.
    pub alert: Alert,
    /// Its version (logical time, ms).
    pub version: u64,
    views: Box<[OnceLock<Arc<CenterView>>]>,
}

impl AlertVersion {
    /// A version of `alert` for `centers` centers.
    pub fn new(alert: Alert, version: u64, centers: usize) -> Self {
        Self {
            alert,
            version,
            views: (0..centers).map(|_| OnceLock::new()).collect(),
        }
    }

    /// What `center`'s officers may see of it.
    pub fn view(&self, center: usize, ctx: &ViewContext) -> Arc<CenterView> {
        let compute = || {
            Arc::new(match ctx.centers.get(center) {
                Some(c) => center_view(&self.alert, &c.recipient, &ctx.policy),
                None => CenterView {
                    recipient: String::new(),
                    shared: None,
                    hidden: Some("the officer's center is not in the roster".into()),
                    checks: Vec::new(),
                    fields: Vec::new(),
                },
            })
        };
        match self.views.get(center) {
            Some(slot) => Arc::clone(slot.get_or_init(compute)),
            None => compute(),
        }
    }
}

/// What every view needs: the centers and the pseudonym policy.
#[derive(Debug, Clone)]
pub struct ViewContext {
    /// The roster's centers with their egress settings.
    pub centers: Centers,
    /// The pseudonymisation policy.
    pub policy: Policy,
}

/// The queue line of one alert for one center.
pub fn queue_item(
    version: &AlertVersion,
    routing: Option<&AlertRouting>,
    opened_ms: u64,
    view: &CenterView,
) -> QueueItem {
    let a = &version.alert;
    let opened = jiff::Timestamp::from_millisecond(i64::try_from(opened_ms).unwrap_or(0))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    QueueItem {
        id: a.id.clone(),
        severity: routing.map_or(a.severity, |r| r.severity),
        state: routing.map_or(AlertState::Open, |r| r.state),
        owner: routing.map(|r| r.owner.clone()).unwrap_or_default(),
        opened_at: routing.map_or(opened, |r| r.opened_at),
        ack_deadline: routing.and_then(|r| r.ack_deadline),
        escalated: routing.is_some_and(|r| r.escalation.is_some()),
        acknowledged_by: routing.and_then(|r| r.acknowledged_by.clone()),
        assigned_to: routing.and_then(|r| r.assigned_to.clone()),
        version: version.version,
        rule: a.rule.clone(),
        title: view.shared.as_ref().map(|s| s.title.clone()),
        hidden: view.hidden.clone(),
        sightings: a.sightings,
        drill: a.drill,
    }
}

/// The queue line of a tracked alert for `center`.
pub fn tracked_item(t: &Tracked, center: usize, ctx: &ViewContext) -> QueueItem {
    let view = t.current.view(center, ctx);
    queue_item(&t.current, t.routing.as_deref(), t.opened_ms, &view)
}

/// One alert in full for `center`.
pub fn detail(t: &Tracked, open: bool, center: usize, ctx: &ViewContext) -> AlertDetail {
    let view = t.current.view(center, ctx);
    AlertDetail {
        item: queue_item(&t.current, t.routing.as_deref(), t.opened_ms, &view),
        alert: view.shared.clone(),
        fields: view.fields.clone(),
        routing: t.routing.as_deref().cloned(),
        history: t.history.iter().cloned().collect(),
        open,
    }
}

/// Why each field of an alert is shown or not to `center`.
pub fn explain_view(t: &Tracked, center: usize, ctx: &ViewContext) -> ExplainView {
    let view = t.current.view(center, ctx);
    ExplainView {
        alert_id: t.current.alert.id.clone(),
        recipient: view.recipient.clone(),
        shown: view.shared.is_some(),
        checks: view.checks.clone(),
        fields: view.fields.clone(),
    }
}

/// The whole desk for `center`.
pub fn snapshot(store: &DeskStore, center: usize, ctx: &ViewContext) -> DeskSnapshot {
    DeskSnapshot {
        time_ms: store.last_time(),
        queue: store.open().map(|t| tracked_item(t, center, ctx)).collect(),
        duty: store.duty().cloned(),
        handovers: store.handovers().to_vec(),
    }
}

/// What changed at one closed time, for `center`.
pub fn delta(entry: &ClosedEntry, center: usize, ctx: &ViewContext) -> DeskDelta {
    DeskDelta {
        time_ms: entry.time_ms,
        upserts: entry
            .upserts
            .iter()
            .map(|u| {
                let view = u.version.view(center, ctx);
                queue_item(&u.version, u.routing.as_deref(), u.opened_ms, &view)
            })
            .collect(),
        removed: entry.removed.clone(),
        duty: entry.duty.clone(),
        handovers: entry.handovers.clone(),
        actions: entry.actions.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.
pub(crate) mod tests {
    use schemas::marking::Marking;
    use schemas::sharing::Treatment;
    use schemas::{
        Contributor, ContributorKind, CountryVictims, IndicatorKind, IndicatorRef, Provenance,
        Severity, SourceKind,
    };

    use super::*;

    /// A TLP:RED alert whose owner names only the Lyon desk, with victims.
    pub(crate) fn alert(id: &str) -> Alert {
        let red = Marking {
            tlp: Tlp::Red,
            owner: "acme".into(),
            sharing: vec!["desk-lyon".into()],
        };
        let t = jiff::Timestamp::UNIX_EPOCH;
        Alert {
            schema_version: 1,
            id: id.into(),
            rule: "indicator_match".into(),
            rule_version: 1,
            key: "k".into(),
            window_start: t,
            window_end: t,
            severity: Severity::High,
            title: "ipv4 203.0.113.7 contacted by 10.0.0.5".into(),
            indicator: IndicatorRef {
                id: "i1".into(),
                kind: IndicatorKind::Ipv4,
                value: "203.0.113.7".into(),
                source_kind: SourceKind::Partner,
                source_id: "acme".into(),
                confidence: 90,
                created: t,
            },
            marking: red.clone(),
            first_seen: t,
            last_seen: t,
            sightings: 3,
            hourly: vec![],
            sensors: 1,
            victims: 1,
            victim_ips: vec!["10.0.0.5".parse().unwrap()],
            victims_by_country: vec![CountryVictims {
                country: "FR".into(),
                victim_ips: vec!["10.0.0.5".parse().unwrap()],
            }],
            accounts: vec![],
            countries: vec!["FR".into()],
            retroactive_sightings: 0,
            event_ids: vec!["e1".into()],
            summarised_sightings: 0,
            drill: false,
            provenance: Provenance {
                input_keys: vec!["ip:203.0.113.7".into()],
                sources: vec![Contributor {
                    kind: ContributorKind::Partner,
                    id: "acme".into(),
                    indicator_id: "i1".into(),
                    confidence: 90,
                    reported: t,
                    marking: red,
                }],
                corroborated_confidence: 90,
            },
        }
    }

    fn ctx(settings: &[CenterEntry]) -> ViewContext {
        let zones = [("Lyon", "Europe/Paris"), ("Singapore", "Asia/Singapore")]
            .map(|(n, z)| (n.to_string(), z.to_string()));
        ViewContext {
            centers: Centers::new(&zones, settings, false),
            policy: Policy::new(b"0123456789abcdef".to_vec()),
        }
    }

    #[test]
    fn a_red_alert_reaches_only_the_centers_its_owner_named() {
        let ctx = ctx(&[]);
        let v = AlertVersion::new(alert("a"), 1, 2);
        let lyon = v.view(0, &ctx);
        let sg = v.view(1, &ctx);
        assert_eq!(lyon.recipient, "desk-lyon");
        assert!(lyon.shared.is_some());
        assert!(sg.shared.is_none());
        assert!(sg.hidden.as_deref().unwrap().contains("TLP:RED"));
        let item = queue_item(&v, None, 1, &sg);
        assert_eq!(item.title, None);
        let text = serde_json::to_string(&item).unwrap();
        assert!(
            !text.contains("203.0.113.7") && !text.contains("10.0.0.5"),
            "{text}"
        );
        // The same version's verdict is computed once per center.
        assert!(Arc::ptr_eq(&lyon, &v.view(0, &ctx)));
    }

    #[test]
    fn personal_data_follows_the_center_setting() {
        let a = AlertVersion::new(alert("a"), 1, 2);
        let pseudo = a.view(0, &ctx(&[]));
        let shared = pseudo.shared.as_ref().unwrap();
        assert!(shared.victim_ips[0].starts_with("pseud:"));
        assert!(!shared.title.contains("10.0.0.5"));
        assert!(
            pseudo
                .fields
                .iter()
                .any(|f| f.field == "victim_ips" && f.treatment == Treatment::Pseudonymised)
        );
        let clear = AlertVersion::new(alert("a"), 1, 2).view(
            0,
            &ctx(&[CenterEntry {
                name: "lyon".into(),
                recipient: None,
                clearance: None,
                personal_data: true,
            }]),
        );
        assert_eq!(
            clear.shared.as_ref().unwrap().victim_ips,
            vec!["10.0.0.5".to_string()]
        );
    }
}
