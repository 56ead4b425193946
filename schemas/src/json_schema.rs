//! JSON Schema of every topic's records (`fusion schema --out DIR`).

use schemars::Schema;

use crate::topic::Topic;

/// The JSON Schema of the records of `topic`.
pub fn for_topic(topic: Topic) -> Schema {
    match topic {
        Topic::SensorEvents => schemars::schema_for!(crate::SensorEvent),
        Topic::PartnerIndicators => schemars::schema_for!(crate::Indicator),
        Topic::OsintItems => schemars::schema_for!(crate::OsintItem),
        Topic::DeskActions => schemars::schema_for!(crate::DeskAction),
        Topic::Alerts => schemars::schema_for!(crate::AlertChange),
        Topic::Deadletter => schemars::schema_for!(crate::DeadLetter),
        // Feedback carries STIX 2.1 sighting objects; their schema is STIX's own.
        Topic::Feedback => schemars::json_schema!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "STIX 2.1 sighting",
            "type": "object",
            "required": ["type", "spec_version", "id", "sighting_of_ref"],
            "properties": {"type": {"const": "sighting"}}
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_has_a_schema_naming_its_fields() {
        let events = serde_json::to_string(&for_topic(Topic::SensorEvents)).unwrap();
        assert!(events.contains("observed_at") && events.contains("schema_version"));
        let ind = serde_json::to_string(&for_topic(Topic::PartnerIndicators)).unwrap();
        assert!(ind.contains("AMBER+STRICT") && ind.contains("valid_until"));
        for t in Topic::ALL {
            assert!(for_topic(t).as_object().is_some());
        }
    }

    #[test]
    fn the_event_schema_names_and_describes_the_record_not_its_rust_form() {
        // `SensorEvent` is generic over its text: the schema still says `SensorEvent` and
        // `FileHashes`, with the records' own descriptions.
        let schema = for_topic(Topic::SensorEvents);
        let text = |key: &str| schema.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        assert_eq!(text("title").as_deref(), Some("SensorEvent"));
        assert_eq!(
            text("description").as_deref(),
            Some("One observation by one sensor (canonical form on `fusion.sensor.events`).")
        );
        let defs = serde_json::to_value(schema.get("$defs")).unwrap();
        assert_eq!(
            defs["FileHashes"]["description"],
            "File hashes carried by an event."
        );
    }
}
